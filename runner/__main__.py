"""``python -m runner`` is the ``flashrunner`` command.

SIGTERM means Ctrl-C from the first instant, before anything is imported or
written (exit code 130); :func:`runner.cli.main` takes over from there.
"""

from __future__ import annotations

import signal
import sys


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


try:
    # Inside the try: a SIGTERM may land while the handler is being installed.
    signal.signal(signal.SIGTERM, _interrupted)
    from runner.cli import entry
except KeyboardInterrupt:
    sys.exit(130)

entry()
