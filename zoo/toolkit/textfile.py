"""Reading the text files users give zoo: one reader, one error format.

Every text file (a training corpus, a CSV series, a CoNLL-U treebank, a file of inputs for
`zoo predict --input`) is read whole as bytes and decoded here, so that whatever is wrong with
it is one line naming the file and, where there is one, the line:

    train.tsv:17: not UTF-8 text (byte 0xff at column 9)
    train.tsv: no such file

A file named by an option (`--input`, `--output`) is the user's mistake on the command line,
a `UsageError` (exit 2) naming the option; a file a dataset reads is a `DataError` (exit 1).
Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import NoReturn

from zoo.core.errors import DataError, UsageError

BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class TextFile:
    """A decoded text file: its text (a leading byte-order mark removed), where it came
    from, and a fingerprint of its bytes (how a dataset knows it is evaluating the very file
    it was trained on, and so must rebuild the same held-out split)."""

    path: str
    text: str
    fingerprint: str
    bom: bool = False

    def lines(self, *, keep_cr: bool = False) -> list[str]:
        """The lines, split on '\\n' only (not on the other breaks str.splitlines knows); the
        end of the last line is not a line of its own. `keep_cr` keeps a trailing '\\r', for
        writers that must give back the very same bytes."""
        lines = self.text.split("\n")
        if lines[-1] == "":
            lines.pop()
        return lines if keep_cr else [line.removesuffix("\r") for line in lines]

    def numbered(self) -> Iterator[tuple[int, str]]:
        """(line number from 1, line) for each line, '\\r' removed."""
        return enumerate(self.lines(), 1)

    def error(self, message: str, line: int | None = None) -> DataError:
        """A DataError in the one format: `PATH:LINE: message`."""
        return DataError(message, path=self.path, line=line)


def fingerprint(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def decode(raw: bytes, path: str) -> TextFile:
    """UTF-8 bytes as a TextFile; a bad byte or a NUL names its line and column."""
    stamp, bom = fingerprint(raw), raw.startswith(BOM)
    body = raw[len(BOM) :] if bom else raw
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        line_start = body.rfind(b"\n", 0, e.start) + 1
        raise DataError(
            f"not UTF-8 text (byte 0x{body[e.start]:02x} at column {e.start - line_start + 1})",
            path=path,
            line=body.count(b"\n", 0, e.start) + 1,
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        raise DataError(
            "contains a NUL byte: not a text file", path=path, line=text.count("\n", 0, nul) + 1
        )
    return TextFile(path, text, stamp, bom)


@contextlib.contextmanager
def file_errors(path: str | os.PathLike[str], option: str | None = None) -> Iterator[None]:
    """Turn the system's complaints about opening `path` into one line: a DataError, or a
    UsageError naming `option` when the file was named by a command-line option."""
    name = os.fspath(path)

    def fail(what: str, e: OSError) -> Exception:
        where = os.fspath(e.filename) if e.filename is not None else name
        if option is not None:
            return UsageError(f"{option} {where}: {what}")
        return DataError(what, path=where)

    try:
        yield
    except FileNotFoundError as e:
        raise fail("no such file", e) from None
    except IsADirectoryError as e:
        raise fail("is a folder, expected a file", e) from None
    except PermissionError as e:
        raise fail("permission denied", e) from None
    except OSError as e:
        raise fail(f"cannot read ({e.strerror or e})", e) from None


def read_text(path: str | os.PathLike[str], *, option: str | None = None) -> TextFile:
    """Read and decode a UTF-8 text file (see the module docstring for its errors)."""
    name = os.fspath(path)
    with file_errors(name, option), open(name, "rb") as f:
        raw = f.read()
    try:
        return decode(raw, name)
    except DataError as e:
        if option is None:
            raise
        raise UsageError(f"{option} {e}") from None


def embedded(package: str, name: str) -> TextFile:
    """A text file shipped inside a package (a plugin's built-in toy data)."""
    raw = resources.files(package).joinpath(name).read_bytes()
    return decode(raw, name)


def stream_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """(line number, line) of a file too large to hold whole (word vectors), read line by
    line, with the same errors as `read_text`."""
    name = os.fspath(path)
    with file_errors(name):
        f = open(name, "rb")  # noqa: SIM115  (closed below; opening errors get one line)
    with f:
        for lineno, raw in enumerate(f, 1):
            if lineno == 1 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(
                    f"not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1})",
                    path=name,
                    line=lineno,
                ) from None
            yield lineno, text.removesuffix("\n").removesuffix("\r")  # as `TextFile.lines`


def _complete(raw: bytes) -> int:
    """How many leading bytes of `raw` end on a whole UTF-8 character: a chunk cut inside a
    character keeps its last 1-3 bytes for the next chunk."""
    for back in range(1, min(4, len(raw)) + 1):
        byte = raw[-back]
        if byte & 0xC0 == 0x80:  # a continuation byte: look further back for the lead
            continue
        need = 2 if byte >= 0xC0 and byte < 0xE0 else 3 if byte >= 0xE0 and byte < 0xF0 else 4
        return len(raw) - back if byte >= 0xC0 and need > back else len(raw)
    return len(raw)


class TextChunks:
    """A UTF-8 text file of any size as decoded chunks of about `size` bytes, read once per
    iteration, with the errors of `read_text` (the bad byte's line and column, a NUL's line)
    and, after a whole pass, the same `fingerprint` as `read_text` gives. Memory holds one
    chunk: how a dataset reads a text larger than memory (docs/data.md)."""

    def __init__(self, path: str | os.PathLike[str], size: int = 16 << 20):
        self.path, self.size = os.fspath(path), size
        self.fingerprint: str | None = None
        self.bom = False

    def __iter__(self) -> Iterator[str]:
        digest = hashlib.sha256()
        lines, line_start, offset, carry = 0, 0, 0, b""  # offsets count bytes after a BOM
        with file_errors(self.path), open(self.path, "rb") as f:
            first = True  # the first read is long enough to hold a whole BOM
            while block := f.read(max(self.size, len(BOM)) if first else self.size):
                digest.update(block)
                if first and block.startswith(BOM):
                    block, self.bom = block[len(BOM) :], True
                first = False
                raw = carry + block
                cut = _complete(raw)
                raw, carry = raw[:cut], raw[cut:]
                text = self._decode(raw, offset, lines, line_start)
                nl = raw.rfind(b"\n")
                if nl >= 0:
                    line_start = offset + nl + 1
                lines += raw.count(b"\n")
                offset += len(raw)
                yield text
        if carry:
            self._decode(carry, offset, lines, line_start)
        self.fingerprint = digest.hexdigest()[:16]

    def _decode(self, raw: bytes, offset: int, lines: int, line_start: int) -> str:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            nl = raw.rfind(b"\n", 0, e.start)
            column = e.start - nl if nl >= 0 else offset + e.start - line_start + 1
            raise DataError(
                f"not UTF-8 text (byte 0x{raw[e.start]:02x} at column {column})",
                path=self.path,
                line=lines + raw.count(b"\n", 0, e.start) + 1,
            ) from None
        nul = text.find("\x00")
        if nul >= 0:
            raise DataError(
                "contains a NUL byte: not a text file",
                path=self.path,
                line=lines + text.count("\n", 0, nul) + 1,
            )
        return text


class Lines:
    """(line number from 1, line) of a UTF-8 text file of any size, read 1 MiB at a time, with
    the very error `read_text` would give for the whole file: a bad byte anywhere comes before
    a NUL anywhere, which comes before any error of the lines' reader. A reader that finds a
    malformed line calls `fail(error)`, which reads the rest of the file for a bad byte or a
    NUL to report first, as a file read whole would. Lines are split on '\\n' only and lose a
    trailing '\\r' (`TextFile.numbered`); after a whole pass, `fingerprint` is `read_text`'s."""

    def __init__(self, path: str | os.PathLike[str], size: int = 1 << 20):
        self.path, self.size = os.fspath(path), max(size, len(BOM))
        self.fingerprint: str | None = None
        self._rest: Iterator[tuple[int, bytes]] = iter(())

    def __iter__(self) -> Iterator[tuple[int, str]]:
        self._rest = self._blocks()
        for lines, raw in self._rest:
            try:
                text = self._decode(raw, lines)
            except DataError:
                self._rest = iter(())  # the first bad byte: nothing to look for after it
                raise
            nul = self._nul(text, lines)
            if nul is not None:
                self._first(nul, nul)
            found = text.split("\n")
            if found[-1] == "":
                found.pop()
            for i, line in enumerate(found, lines + 1):
                yield i, line.removesuffix("\r")

    def fail(self, error: DataError) -> NoReturn:
        """Raise the error a whole read would give first: a bad byte later in the file, else
        a NUL there, else `error` (a malformed line)."""
        self._first(None, error)

    def _first(self, nul: DataError | None, error: DataError) -> NoReturn:
        rest, self._rest = self._rest, iter(())
        for lines, raw in rest:  # what is left of the file
            text = self._decode(raw, lines)  # raises at a bad byte
            nul = nul or self._nul(text, lines)
        raise nul or error

    def _blocks(self) -> Iterator[tuple[int, bytes]]:
        """(lines before it, bytes) of whole lines at a time (the last may lack its '\\n'),
        a leading byte-order mark removed; the fingerprint set at the end."""
        digest, lines, carry = hashlib.sha256(), 0, b""
        with file_errors(self.path), open(self.path, "rb") as f:
            first = True
            while block := f.read(self.size):
                digest.update(block)
                if first and block.startswith(BOM):
                    block = block[len(BOM) :]
                first = False
                raw = carry + block
                cut = raw.rfind(b"\n") + 1
                raw, carry = raw[:cut], raw[cut:]
                if raw:
                    yield lines, raw
                    lines += raw.count(b"\n")
        if carry:
            yield lines, carry
        self.fingerprint = digest.hexdigest()[:16]

    def _decode(self, raw: bytes, lines: int) -> str:
        """Whole lines as text; a bad byte names its line and column (as `decode`)."""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line_start = raw.rfind(b"\n", 0, e.start) + 1
            raise DataError(
                f"not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start - line_start + 1})",
                path=self.path,
                line=lines + raw.count(b"\n", 0, e.start) + 1,
            ) from None

    def _nul(self, text: str, lines: int) -> DataError | None:
        at = text.find("\x00")
        if at < 0:
            return None
        line = lines + text.count("\n", 0, at) + 1
        return DataError("contains a NUL byte: not a text file", path=self.path, line=line)
