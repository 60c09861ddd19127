"""`python -m zoo` and the `zoo` console script: the command line.

The console script starts here rather than at `zoo.cli:main` so that Ctrl-C while the command
line is still importing (click, the commands, the plugins: seconds on a loaded machine) ends
as Ctrl-C during a command does, one "interrupted" line and exit 130, not a traceback. Only
the import of the light `zoo` package itself comes before the guard. Once the command has
ended, Ctrl-C is ignored: what is left is the interpreter's teardown, where an interrupt has
nothing to stop and only prints "Exception ignored ... KeyboardInterrupt" noise.
"""

from __future__ import annotations

import signal
import sys


def console() -> None:
    """Import the command line under the Ctrl-C guard, then run it."""
    try:
        from zoo.cli import main
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        raise SystemExit(130) from None
    try:
        main()
    finally:  # the command has ended (click exits by SystemExit): nothing left to interrupt
        signal.signal(signal.SIGINT, signal.SIG_IGN)


if __name__ == "__main__":
    console()
