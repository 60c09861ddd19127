"""The runtime's twins of zoo's file rules, written again here because the runtime imports
nothing of zoo; tests/runtime/test_files.py and test_cli.py hold each pair to the same answers
and wording:

- no command writes over one of its own inputs, nor into a folder that is missing or cannot
  be written (`zoo.core.fileio.refuse_input_as_output`, `check_writable`);
- every file is written atomically (`zoo.core.fileio.atomic_write`): a temporary file in the
  target's folder, flushed to disk, renamed over the target, so a full disk or a kill leaves
  the previous file whole, and a failure is one line naming the file;
- a text file of inputs is read as `zoo.toolkit.textfile` reads it: UTF-8 (a leading
  byte-order mark dropped), a bad byte or a NUL named by line and column, lines split on
  `\\n` alone;
- JSON answers are written as zoo writes them (`zoo.core.formatting.clean`): a NaN or an
  infinity becomes null, tuples become lists.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

from .onnxfile import DataError, RuntimeZooError, UsageError

BOM = b"\xef\xbb\xbf"
_DESCRIPTOR = re.compile(r"^(/dev/(stdout|stderr|fd/\d+)|/proc/[^/]+/fd/\d+)$")


class WriteError(RuntimeZooError):
    """The system refused to write a file (a full disk, a quota, an I/O error): not a bug,
    and nothing was written: the previous file, if any, is untouched."""


def refuse_input_as_output(
    output: str | os.PathLike[str], option: str, inputs: dict[str, str | os.PathLike[str] | None]
) -> None:
    """Raise UsageError (exit 2) if `output` is the same file as one of `inputs`, which maps
    how each input was given (`FILE`, `--input`) to its path."""
    message = same_file_message(output, option, inputs)
    if message:
        raise UsageError(message)


def same_file_message(
    output: str | os.PathLike[str], option: str, inputs: dict[str, str | os.PathLike[str] | None]
) -> str | None:
    for label, given in inputs.items():
        if given is not None and _same_file(Path(output), Path(given)):
            return (
                f"{option} {str(output)!r}: is the same file as {label} {str(given)!r}; "
                "writing there would destroy it: give another path"
            )
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they would be
        return os.path.realpath(a) == os.path.realpath(b)


def check_writable(
    path: str | os.PathLike[str],
    *,
    option: str = "--output",
    inputs: dict[str, str | os.PathLike[str] | None] | None = None,
) -> Path:
    """Fail before loading anything if `path` cannot be written, or is one of the command's
    `inputs` (zoo.core.fileio.check_writable; unlike it, a device or descriptor such as
    /dev/stdout is taken as it is, whatever its folder)."""
    refuse_input_as_output(path, option, inputs or {})
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise UsageError(f"{option} {str(path)!r}: is a folder; give a file name")
    if _in_place(target) and target.exists():  # /dev/stdout: written to, its folder unused
        if not os.access(target, os.W_OK):
            raise UsageError(f"{option} {str(path)!r}: file exists and is not writable")
        return target
    if not folder.is_dir():
        raise UsageError(f"{option} {str(path)!r}: folder {str(folder)!r} does not exist")
    try:  # really try: permission bits say nothing for root, read-only mounts, quotas
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UsageError(
            f"{option} {str(path)!r}: folder {str(folder)!r} is not writable ({e.strerror})"
        ) from None
    if target.exists() and not os.access(target, os.W_OK):
        raise UsageError(f"{option} {str(path)!r}: file exists and is not writable")
    return target


# ------------------------------------------------------------------------------ writing
def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one.
    A system error (no space left, say) is a WriteError naming the file. A device, a pipe or
    a descriptor (`/dev/stdout`, `/proc/self/fd/1`) is written in place: a rename would
    replace the name itself (as root, the system's /dev/stdout link), not write to it."""
    target = Path(path)
    if _in_place(target):
        try:
            _write_in_place(target, data)
        except OSError as e:
            raise WriteError(f"cannot write {target}: {e.strerror or e}") from None
        return
    try:
        _write_and_replace(target, data)
    except OSError as e:
        kept = "the previous file is unchanged" if target.exists() else "no file was written"
        raise WriteError(f"cannot write {target}: {e.strerror or e}; {kept}") from None


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write(path, text.encode("utf-8"))


def _descriptor(target: Path) -> bool:
    """/dev/stdout, /dev/fd/3, /proc/self/fd/1: an open file's name, whatever it is."""
    return _DESCRIPTOR.match(os.path.abspath(target)) is not None


def _in_place(target: Path) -> bool:
    """Not a file of its own to replace: a descriptor (the file a shell redirected stdout
    to), a device, a pipe."""
    if _descriptor(target):
        return True
    try:
        return not stat.S_ISREG(os.stat(target).st_mode)
    except OSError:  # not there (yet): a new file
        return False


def _write_in_place(target: Path, data: bytes) -> None:
    """Appended to a descriptor (`{ echo head; zoo-runtime ... --output /dev/stdout; } > f`
    keeps the head), written to a device or a pipe."""
    with open(target, "ab" if _descriptor(target) else "wb", buffering=0) as f:
        view = memoryview(data)
        while view:
            view = view[f.write(view) or 0 :]


def _write_and_replace(target: Path, data: bytes) -> None:
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if target.exists():
            with contextlib.suppress(OSError):
                os.chmod(tmp, target.stat().st_mode & 0o777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# ------------------------------------------------------------------------------ reading
def read_text(path: str | os.PathLike[str], *, option: str | None = None) -> str:
    """A UTF-8 text file's text (zoo.toolkit.textfile.read_text): a DataError naming the
    file and line, or a UsageError naming `option` when the file was given by one."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            raw = f.read()
    except OSError as e:
        what = _cannot_open(e)
        where = os.fspath(e.filename) if e.filename is not None else name
        if option is not None:
            raise UsageError(f"{option} {where}: {what}") from None
        raise DataError(f"{where}: {what}") from None
    try:
        return decode(raw, name)
    except DataError as e:
        if option is None:
            raise
        raise UsageError(f"{option} {e}") from None


def _cannot_open(e: OSError) -> str:
    if isinstance(e, FileNotFoundError):
        return "no such file"
    if isinstance(e, IsADirectoryError):
        return "is a folder, expected a file"
    if isinstance(e, PermissionError):
        return "permission denied"
    return f"cannot read ({e.strerror or e})"


def decode(raw: bytes, path: str) -> str:
    """UTF-8 bytes as text, a leading byte-order mark dropped; a bad byte or a NUL is a
    DataError naming its line (and column), as zoo.toolkit.textfile.decode says it."""
    body = raw[len(BOM) :] if raw.startswith(BOM) else raw
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        line_start = body.rfind(b"\n", 0, e.start) + 1
        line = body.count(b"\n", 0, e.start) + 1
        raise DataError(
            f"{path}:{line}: not UTF-8 text "
            f"(byte 0x{body[e.start]:02x} at column {e.start - line_start + 1})"
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise DataError(f"{path}:{line}: contains a NUL byte: not a text file")
    return text


def lines(text: str) -> list[str]:
    """zoo's lines of a text (TextFile.lines): split on '\\n' only, not on the other breaks
    str.splitlines knows; a trailing '\\r' dropped; the end of the last line is no line."""
    out = text.split("\n")
    if out[-1] == "":
        out.pop()
    return [line.removesuffix("\r") for line in out]


def clean(value: Any) -> Any:
    """JSON-safe answers as `zoo predict --json` writes them: a non-finite float is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value
