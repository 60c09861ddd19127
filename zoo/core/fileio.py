"""Atomic file writes: a crash, kill or Ctrl-C never leaves a half-written file in place.

The bytes go to a temporary file in the target's folder, are flushed to disk, and replace the
target in one `os.replace`, which is atomic on POSIX and Windows. Until that moment the previous
file is untouched; after it, the new one is complete.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from pathlib import Path

from zoo.core.errors import UsageError, ZooError

_DESCRIPTOR = re.compile(r"^(/dev/(stdout|stderr|fd/\d+)|/proc/[^/]+/fd/\d+)$")


class WriteError(ZooError):
    """The system refused to write a file (a full disk, a quota, an I/O error): not a bug,
    and nothing was written: the previous file, if any, is untouched."""


def check_writable(
    path: str | os.PathLike[str],
    *,
    option: str = "--out",
    inputs: dict[str, str | os.PathLike[str] | None] | None = None,
) -> Path:
    """Fail early (before hours of training) if `path` cannot be written, or is one of the
    command's `inputs` (see refuse_input_as_output)."""
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


def refuse_input_as_output(
    output: str | os.PathLike[str], option: str, inputs: dict[str, str | os.PathLike[str] | None]
) -> None:
    """No command writes over one of its own inputs: `zoo card M --out M` would replace the
    model with its card. `inputs` maps how each input was given (`FILE`, `--input`) to its path;
    the same file is found by `os.path.samefile` where both exist (links, `./M`, `dir/../M`),
    else by the resolved path. The runtime's `zoo_runtime.files` holds the twin of this rule;
    tests/runtime/test_files.py keeps the two saying the same."""
    message = same_file_message(output, option, inputs)
    if message:
        raise UsageError(message)


def same_file_message(
    output: str | os.PathLike[str], option: str, inputs: dict[str, str | os.PathLike[str] | None]
) -> str | None:
    """The error line for `refuse_input_as_output`, or None when `output` is no input."""
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
    """Appended to a descriptor (`{ echo head; zoo predict ... --output /dev/stdout; } > f`
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


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write(path, text.encode("utf-8"))
