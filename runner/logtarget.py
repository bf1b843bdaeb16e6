"""Whether an audit log can be created at a path, said the way a user can act on.

``open()`` reports a log path under a regular file as "Not a directory" and a
path that is a folder as "Is a directory"; neither says which part of the path
is wrong. :func:`check_log_target` names it before anything runs.
"""

from __future__ import annotations

from pathlib import Path

from runner.errors import EnvironmentProblem

__all__ = ["check_log_target", "log_target_problem"]


def log_target_problem(path: Path) -> EnvironmentProblem | None:
    """The problem with creating a new log file at ``path``, or None when there is none."""
    if path.is_dir():
        return EnvironmentProblem(f"log file {path} is a directory",
                                  hint="name a file inside it, e.g. "
                                       f"{path / 'run-{run_id}.jsonl'}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                return EnvironmentProblem(
                    f"cannot create log file {path}: {parent} is a file, not a folder",
                    hint="choose a log path whose folders are folders")
            break
    if path.exists():
        return EnvironmentProblem(
            f"log file {path} already exists; an audit log is never overwritten",
            hint="put {run_id} or {time} in the log path, or move the old log away")
    return None


def check_log_target(path: Path) -> None:
    """Raise the :func:`log_target_problem` of ``path``, if any."""
    problem = log_target_problem(path)
    if problem is not None:
        raise problem
