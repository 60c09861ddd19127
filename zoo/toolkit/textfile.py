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
