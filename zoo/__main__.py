"""`python -m zoo` and the `zoo` console script: the command line.

The console script starts here rather than at `zoo.cli:main` so that Ctrl-C while the command
line is still importing (click, the commands, the plugins: seconds on a loaded machine) ends
as Ctrl-C during a command does, one "interrupted" line and exit 130, not a traceback. Only
the import of the light `zoo` package itself comes before the guard.
"""

from __future__ import annotations

import sys


def console() -> None:
    """Import the command line under the Ctrl-C guard, then run it."""
    try:
        from zoo.cli import main
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        raise SystemExit(130) from None
    main()


if __name__ == "__main__":
    console()
