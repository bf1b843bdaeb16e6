"""``flashrunner audit …`` and the audit options of ``flashrunner run``.

Kept apart from :mod:`runner.cli`: it registers the ``audit`` command group
and adds ``--ledger`` (and the other audit options) to ``run``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_run_options", "run_options"]


def add_run_options(run: argparse.ArgumentParser) -> None:
    """The audit options of ``flashrunner run``."""
    run.add_argument("--ledger", type=Path, metavar="DIR",
                     help="the host's ledger of runs (default: "
                          "$XDG_STATE_HOME/flashrunner, ~/.local/state/flashrunner)")


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """``run_manifest`` keyword arguments from the audit options."""
    return {"ledger": args.ledger}
