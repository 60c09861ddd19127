"""A CSV series of any size for the `csv` dataset, in bounded memory.

`load_csv` reads a small file whole (`zoo.toolkit.series.read_table`); a file larger than
`STREAM_ABOVE` bytes (`ZOO_CSV_STREAM_ABOVE`) comes here instead. One pass reads it in chunks
(`zoo.toolkit.textfile.TextChunks`: the same decoding errors and fingerprint), splits the
chunks into the lines `io.StringIO` gives and feeds them to the one CSV row parser
(`series.table_rows`): the same rows, line numbers and errors as the file read whole. The
header decides the columns (the loader's own `choose_columns` or a model's saved layout);
each chosen column's numbers go, a block of rows at a time, into a float64 file of its own,
and the timestamps are checked as they pass, only their gaps counted for the step.

Then the z-scores of the training rows come from the column files, read back in blocks, by the
very formula of `fit_zscore` (`zscore_of`, `math.fsum`: exact, so bit-identical), and the
standardised series is written, a block of rows at a time, as float32 [rows, columns] to a
temporary file and memory-mapped: the array the loader's collate cuts windows from, which
zoo's prepared-data cache copies in chunks and maps on later runs. Memory holds a chunk of
text and a block of rows, never the file.

A file with several faults reports the one the whole-file reader would: a decoding fault
anywhere first, then the first malformed row, a column setting, the first bad number of the
first column that has one, then the first bad timestamp.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import numpy as np

from zoo.core.errors import DataError, ZooError
from zoo.toolkit.series import (
    Table,
    ZScore,
    count_gap,
    most_common_gap,
    parse_number,
    parse_stamp,
    table_rows,
    zscore_of,
)
from zoo.toolkit.textfile import TextChunks

STREAM_ABOVE = int(os.environ.get("ZOO_CSV_STREAM_ABOVE", 64 << 20))
CHUNK = 1 << 20  # bytes of text decoded at a time
ROWS = 8192  # rows parsed at a time
VALUES = 1 << 16  # numbers read back at a time (Python floats for the sums: 2 MiB)

# (targets, input columns, date column or None, input_length, horizon): what the header decides
Layout = tuple[list[str], list[str], str | None, int, int]


def wanted(path: str | os.PathLike[str] | None) -> bool:
    """Whether to stream: a local file larger than STREAM_ABOVE bytes."""
    if not path:
        return False
    try:
        return os.path.getsize(path) > STREAM_ABOVE
    except (OSError, ValueError):
        return False  # the reader says what is wrong with it


class Lines:
    """The lines of a file read in chunks, ends kept, as `io.StringIO(text, newline="")`
    splits the whole text: the last line of each chunk waits for the next, so a line (or a
    '\\r\\n') cut by a chunk's end comes out whole. Remembers whether any text is visible
    (an empty file's error), and can `drain` the rest of the file for a decoding fault."""

    def __init__(self, chunks: TextChunks):
        self.chunks = iter(chunks)
        self.visible = False

    def __iter__(self) -> Iterator[str]:
        carry = ""
        for text in self.chunks:
            self.visible = self.visible or (bool(text) and not text.isspace())
            lines = io.StringIO(carry + text, newline="").readlines()
            carry = lines.pop() if lines else ""
            yield from lines
        if carry:
            yield carry

    def drain(self) -> None:
        """Read to the end: a decoding fault there is raised, as reading the file whole would
        have before parsing it."""
        for _ in self.chunks:
            pass


class Streamed:
    """A CSV file read in one pass: the layout the header decided, the row count, the
    fingerprint and the step between timestamps; the chosen columns' numbers wait in a
    temporary float64 file each until `scaled` writes the series."""

    def __init__(self, path: str | os.PathLike[str], layout_of: Callable[[Table], Layout]):
        self.path = os.fspath(path)
        self.folder = tempfile.mkdtemp(prefix="zoo-csv-")
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.folder, True)
        self.rows, self.layout, self.step = 0, None, None
        self.index: list[int] = []  # the cells parsed, in the order of the input columns
        self.date_index: int | None = None
        self.faults: dict[str, Any] = {"layout": None, "missing": None, "stamp": None}
        self.bad: dict[int, DataError] = {}  # column position -> its first bad cell
        self.gaps: dict[float, int] = {}
        self.last: datetime | None = None
        self.files: list[Any] = []
        try:
            self._scan(layout_of)
        except BaseException:
            self.close()
            raise

    @property
    def names(self) -> list[str]:
        return self.layout[1] if self.layout else []

    def _scan(self, layout_of: Callable[[Table], Layout]) -> None:
        chunks = TextChunks(self.path, CHUNK)
        lines = Lines(chunks)
        rows = table_rows(lines, self.path)
        try:
            first = next(rows, None)
            if first is not None:
                self._head(first[1], layout_of)
            block: list[tuple[int, list[str]]] = []
            for row in rows:
                block.append(row)
                if len(block) == ROWS:
                    self._take(block)
                    block = []
            if block:
                self._take(block)
        except DataError:
            lines.drain()  # a decoding fault further on is what the whole file reports
            raise
        finally:
            for f in self.files:
                f.close()
        self.fingerprint = chunks.fingerprint
        self._raise_faults(lines.visible, first is not None)
        if self.date_index is not None:
            self.step = most_common_gap(self.gaps)

    def _head(self, header: list[str], layout_of: Callable[[Table], Layout]) -> None:
        """The columns the settings name in `header`; a fault waits until the whole file has
        been parsed (a malformed row further on is reported first, as for a file read whole)."""
        head = Table(self.path, header, [], [])
        try:
            self.layout = layout_of(head)
        except ZooError as e:
            self.faults["layout"] = e
            return
        _, columns, date, _, _ = self.layout
        for name in columns:
            try:
                self.index.append(head.index(name, option="columns"))
            except DataError as e:  # a model's column missing from this file
                self.faults["missing"] = e
                break
        if date is not None and self.faults["missing"] is None:
            self.date_index = header.index(date)
        self.files = [
            open(os.path.join(self.folder, f"{j}.f64"), "wb")  # noqa: SIM115  (closed by _scan)
            for j in range(len(self.index))
        ]

    def _take(self, block: list[tuple[int, list[str]]]) -> None:
        """A block of rows: each column's numbers appended to its file (checked a column at a
        time, the slow check only where a cell fails), the timestamps checked."""
        self.rows += len(block)
        if self.layout is None:
            return  # a column setting failed: the rest of the file is only checked
        for j, col in enumerate(self.index):
            if j in self.bad:
                continue
            try:
                values = np.array([float(row[col]) for _, row in block], dtype=np.float64)
                ok = bool(np.isfinite(values).all())
            except ValueError:
                ok = False
            if not ok:
                self.bad[j] = self._fault(block, j, col)
            elif not self.bad:
                values.tofile(self.files[j])
        if self.date_index is not None and self.faults["stamp"] is None:
            self._stamps(block)

    def _fault(self, block: list[tuple[int, list[str]]], j: int, col: int) -> DataError:
        """The error `Table.numbers` gives for the first bad cell of column j in `block`."""
        for line, row in block:
            try:
                parse_number(row[col], self.names[j], self.path, line)
            except DataError as e:
                return e
        raise AssertionError("a cell float() refused passed parse_number")  # pragma: no cover

    def _stamps(self, block: list[tuple[int, list[str]]]) -> None:
        name = self.layout[2] if self.layout else ""
        for line, row in block:
            try:
                stamp = parse_stamp(row[self.date_index], self.last, name, self.path, line)
            except DataError as e:
                self.faults["stamp"] = e
                return
            if self.last is not None:
                count_gap(self.gaps, self.last, stamp)
            self.last = stamp

    def _raise_faults(self, visible: bool, header: bool) -> None:
        """The first fault in the order the whole-file reader meets them."""
        if not visible:
            raise DataError(
                "the file is empty; expected a header line and rows of numbers", path=self.path
            )
        if not header:
            raise DataError("no header line", path=self.path)
        if not self.rows:
            raise DataError("a header but no rows of data", path=self.path)
        if self.faults["layout"] is not None:
            raise self.faults["layout"]
        if self.bad:
            raise self.bad[min(self.bad)]
        for kind in ("missing", "stamp"):
            if self.faults[kind] is not None:
                raise self.faults[kind]

    def fit(self, rows: int) -> ZScore:
        """The z-scores of the first `rows` rows, exactly as `fit_zscore` gives them."""
        return zscore_of(lambda j: self._column(j, rows), rows, self.names, path=self.path)

    def _column(self, j: int, stop: int) -> Iterator[float]:
        with open(os.path.join(self.folder, f"{j}.f64"), "rb") as f:
            while stop > 0:
                part = np.fromfile(f, dtype=np.float64, count=min(VALUES, stop))
                if not len(part):
                    return
                stop -= len(part)
                yield from part.tolist()

    def scaled(self, zscore: ZScore) -> np.ndarray:
        """The standardised series [rows, columns] float32, `zscore.apply` a block at a time
        (elementwise, so the same numbers as applied whole), memory-mapped from a temporary
        file removed with the map. The column files are removed."""
        target = os.path.join(tempfile.mkdtemp(prefix="zoo-csv-"), "series.f32")
        try:
            with open(target, "wb") as out:
                for block in self._blocks():
                    zscore.apply(block, path=self.path).tofile(out)
        except BaseException:
            _remove(target)
            raise
        finally:
            self.close()
        series = np.memmap(target, dtype=np.float32, mode="r", shape=(self.rows, len(self.names)))
        weakref.finalize(series, _remove, target)
        return series

    def _blocks(self) -> Iterator[np.ndarray]:
        """The raw numbers [rows, columns] float64, a block of rows at a time."""
        count = max(1, VALUES // max(1, len(self.names)))
        with contextlib.ExitStack() as stack:
            files = [
                stack.enter_context(open(os.path.join(self.folder, f"{j}.f64"), "rb"))
                for j in range(len(self.names))
            ]
            for _ in range(0, self.rows, count):
                yield np.stack([np.fromfile(f, dtype=np.float64, count=count) for f in files], 1)

    def close(self) -> None:
        """Remove the column files (also done when the reader is collected)."""
        self._cleanup()


def _remove(path: str) -> None:
    """A series file, then its folder."""
    with contextlib.suppress(OSError):
        os.unlink(path)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(path))
