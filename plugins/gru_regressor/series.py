"""Reading a CSV time series: a header line naming the columns, then one row per time step.

Everything a user can get wrong in such a file (not UTF-8, a row with a different number of
columns, a value that is not a finite number, an unknown column name) becomes one
`DataError` in zoo's one format, `PATH:LINE: ...`, naming the column where there is one.
Decoding is `zoo.textfile`'s; this module only parses. No torch here: `zoo predict --input`
(which hands over the file it already read) and the loader share this reader.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from zoo.core.errors import DataError
from zoo.toolkit.textfile import TextFile, read_text

DATE_NAMES = ("date", "datetime", "time", "timestamp", "ds")


@dataclass
class Table:
    """The cells of a CSV file, kept as text until a column is asked for as numbers."""

    path: str
    header: list[str]
    rows: list[list[str]]
    lines: list[int]  # the file line (1-based) of each row, for error messages

    def __len__(self) -> int:
        return len(self.rows)

    def index(self, name: str, *, option: str) -> int:
        """The position of column `name`; a DataError listing the columns when unknown."""
        try:
            return self.header.index(name)
        except ValueError:
            raise DataError(
                f"{option}: no column {name!r}; the header has: {', '.join(self.header)}",
                path=self.path,
                line=1,
            ) from None

    def numbers(self, name: str, *, option: str) -> list[float]:
        """Column `name` as finite floats; the first bad cell is reported by line and column."""
        col = self.index(name, option=option)
        out = []
        for row, line in zip(self.rows, self.lines):
            text = row[col].strip()
            try:
                value = float(text)
            except ValueError:
                what = "an empty cell" if not text else repr(text[:40])
                raise DataError(
                    f"column {name!r}: {what} is not a number", path=self.path, line=line
                ) from None
            if not math.isfinite(value):
                raise DataError(
                    f"column {name!r}: {text!r} is not a finite number", path=self.path, line=line
                )
            out.append(value)
        return out

    def timestamps(self, name: str) -> list[datetime]:
        """Column `name` as ISO dates/times (2016-07-01 00:00:00), strictly increasing."""
        col = self.index(name, option="date_column")
        out: list[datetime] = []
        for row, line in zip(self.rows, self.lines):
            text = row[col].strip()
            try:
                stamp = datetime.fromisoformat(text)
            except ValueError:
                raise DataError(
                    f"column {name!r}: {text[:40]!r} is not a date (expected ISO form, "
                    "e.g. 2016-07-01 00:00:00)",
                    path=self.path,
                    line=line,
                ) from None
            if stamp.tzinfo is not None:
                stamp = stamp.replace(tzinfo=None)
            if out and stamp <= out[-1]:
                raise DataError(
                    f"column {name!r}: {text!r} does not come after the previous row's time",
                    path=self.path,
                    line=line,
                )
            out.append(stamp)
        return out


def read_table(source: str | os.PathLike[str] | TextFile) -> Table:
    """Parse a CSV file with a header (a path, or a file already read); blank lines are
    skipped, every row has every column."""
    file = source if isinstance(source, TextFile) else read_text(source)
    name = file.path
    if not file.text.strip():
        raise file.error("the file is empty; expected a header line and rows of numbers")
    reader = csv.reader(io.StringIO(file.text, newline=""))
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    start = 1
    try:
        for row in reader:
            line, start = start, reader.line_num + 1
            if not row or all(not cell.strip() for cell in row):
                continue
            if header is None:
                header = _check_header(row, name, line)
                continue
            if len(row) != len(header):
                raise file.error(f"{len(row)} columns, but the header has {len(header)}", line)
            rows.append(row)
            lines.append(line)
    except csv.Error as e:
        raise file.error(f"not valid CSV ({e})", reader.line_num or None) from None
    if header is None:  # pragma: no cover - text.strip() was non-empty, so some row was seen
        raise file.error("no header line")
    if not rows:
        raise file.error("a header but no rows of data")
    return Table(name, header, rows, lines)


def _check_header(row: Sequence[str], path: str, line: int) -> list[str]:
    names = [cell.strip() for cell in row]
    for i, column in enumerate(names):
        if not column:
            raise DataError(f"header: column {i + 1} has no name", path=path, line=line)
    seen: set[str] = set()
    for column in names:
        if column in seen:
            raise DataError(f"header: column {column!r} appears twice", path=path, line=line)
        seen.add(column)
    if all(_is_number(c) for c in names):
        raise DataError(
            "the first line holds numbers; expected a header line naming the columns",
            path=path,
            line=line,
        )
    return names


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def find_date_column(header: Sequence[str]) -> str | None:
    """The column called date, datetime, time, timestamp or ds (any case), if there is one."""
    for column in header:
        if column.lower() in DATE_NAMES:
            return column
    return None


def step_seconds(stamps: Sequence[datetime]) -> float | None:
    """The most common gap between consecutive timestamps, in seconds (None for < 2 rows)."""
    if len(stamps) < 2:
        return None
    gaps: dict[float, int] = {}
    for a, b in itertools.pairwise(stamps):
        gap = (b - a).total_seconds()
        gaps[gap] = gaps.get(gap, 0) + 1
    return max(gaps, key=lambda g: (gaps[g], -g))


def season_of(step: float | None) -> int | None:
    """The natural seasonal period, in rows, of data sampled every `step` seconds."""
    if step is None:
        return None
    day, week = 86400.0, 7 * 86400.0
    if step < day and day % step == 0:
        return int(day // step)  # hourly: 24, quarter-hourly: 96
    if step == day:
        return 7
    if step == week:
        return 52
    return None
