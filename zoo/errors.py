"""The project's own error types.

Every failure a user can cause (a bad option, a malformed file, a model file from a stranger)
raises one of these, so the CLI can print one clear line and exit non-zero instead of a
traceback. Anything else escaping is a bug in zoo or in a plugin.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class ZooError(Exception):
    """A failure the user can act on; the CLI prints it as one line and exits 1."""

    exit_code = 1


class UsageError(ZooError):
    """A wrong name, option or value on the command line or in an API call (exit 2, as click)."""

    exit_code = 2


class DataError(ZooError):
    """A data file that cannot be read as the dataset expects; the message names file and line."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line


class ModelFileError(ZooError):
    """A model file that is missing, damaged, too new, or names something not installed."""


class PluginError(ZooError):
    """A plugin that failed to load, misregistered, or clashes with another plugin."""


@contextlib.contextmanager
def reading_input(path: object, option: str = "--input") -> Iterator[None]:
    """Turn the OS's complaints about a file the user named (missing, a folder, unreadable,
    not UTF-8) into one usage error naming the option and the path."""
    try:
        yield
    except FileNotFoundError:
        raise UsageError(f"{option} {str(path)!r}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{option} {str(path)!r}: is a folder") from None
    except UnicodeDecodeError as e:
        # e.object is what was being decoded: the line is right when that was the whole file
        line = bytes(e.object[: e.start]).count(b"\n") + 1
        raise UsageError(
            f"{option} {str(path)!r}: line {line}: not UTF-8 text (byte {e.start})"
        ) from None
    except OSError as e:
        raise UsageError(f"{option} {str(path)!r}: cannot read ({e.strerror or e})") from None
