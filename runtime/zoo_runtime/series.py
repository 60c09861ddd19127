"""Reading a CSV series as zoo's `zoo.toolkit.series` reads it, for the forecaster's
`--input recent.csv`: a header line naming the columns, then one row per time step. Whatever
is wrong with the file (no header, a row of another width, a cell that is not a finite number,
a date out of order) is one DataError `PATH:LINE: ...` in zoo's words, so that zoo-runtime
and zoo predict refuse the same files alike (tests/runtime/test_side_by_side.py)."""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from .onnxfile import DataError


def _error(path: str, message: str, line: int | None = None) -> DataError:
    return DataError(f"{path}:{line}: {message}" if line is not None else f"{path}: {message}")


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
        try:
            return self.header.index(name)
        except ValueError:
            message = f"{option}: no column {name!r}; the header has: {', '.join(self.header)}"
            raise _error(self.path, message, 1) from None

    def numbers(self, name: str, *, option: str) -> list[float]:
        """Column `name` as finite floats; the first bad cell named by line and column."""
        col = self.index(name, option=option)
        out = []
        for row, line in zip(self.rows, self.lines):
            text = row[col].strip()
            try:
                value = float(text)
            except ValueError:
                what = "an empty cell" if not text else repr(text[:40])
                raise _error(self.path, f"column {name!r}: {what} is not a number", line) from None
            if not math.isfinite(value):
                raise _error(self.path, f"column {name!r}: {text!r} is not a finite number", line)
            out.append(value)
        return out

    def timestamps(self, name: str) -> list[datetime]:
        """Column `name` as ISO dates/times, strictly increasing."""
        col = self.index(name, option="date_column")
        out: list[datetime] = []
        for row, line in zip(self.rows, self.lines):
            text = row[col].strip()
            try:
                stamp = datetime.fromisoformat(text)
            except ValueError:
                message = (
                    f"column {name!r}: {text[:40]!r} is not a date (expected ISO form, "
                    "e.g. 2016-07-01 00:00:00)"
                )
                raise _error(self.path, message, line) from None
            if stamp.tzinfo is not None:
                stamp = stamp.replace(tzinfo=None)
            if out and stamp <= out[-1]:
                message = f"column {name!r}: {text!r} does not come after the previous row's time"
                raise _error(self.path, message, line)
            out.append(stamp)
        return out


def read_table(text: str, path: str) -> Table:
    """Parse a CSV text with a header; blank lines are skipped, every row has every column."""
    if not text.strip():
        raise _error(path, "the file is empty; expected a header line and rows of numbers")
    reader = csv.reader(io.StringIO(text, newline=""))
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
                header = _check_header(row, path, line)
                continue
            if len(row) != len(header):
                raise _error(path, f"{len(row)} columns, but the header has {len(header)}", line)
            rows.append(row)
            lines.append(line)
    except csv.Error as e:
        raise _error(path, f"not valid CSV ({e})", reader.line_num or None) from None
    if header is None:  # text.strip() was non-empty, so some row was seen; still, say so
        raise _error(path, "no header line")
    if not rows:
        raise _error(path, "a header but no rows of data")
    return Table(path, header, rows, lines)


def _check_header(row: Sequence[str], path: str, line: int) -> list[str]:
    names = [cell.strip() for cell in row]
    for i, column in enumerate(names):
        if not column:
            raise _error(path, f"header: column {i + 1} has no name", line)
    seen: set[str] = set()
    for column in names:
        if column in seen:
            raise _error(path, f"header: column {column!r} appears twice", line)
        seen.add(column)
    if all(_is_number(c) for c in names):
        message = "the first line holds numbers; expected a header line naming the columns"
        raise _error(path, message, line)
    return names


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def step_seconds(stamps: Sequence[datetime]) -> float | None:
    """The most common gap between consecutive timestamps, in seconds (None for < 2 rows);
    the shortest of equally common gaps."""
    if len(stamps) < 2:
        return None
    gaps: dict[float, int] = {}
    for a, b in itertools.pairwise(stamps):
        gap = (b - a).total_seconds()
        gaps[gap] = gaps.get(gap, 0) + 1
    return max(gaps, key=lambda g: (gaps[g], -g))


def next_timestamps(
    table: Table, date_column: str, count: int, step: float | None = None
) -> list[str] | None:
    """The timestamps of the `count` rows after the table's last, one `step` (seconds) apart:
    the training data's step when given, else the table's own; None without a step."""
    seen = table.timestamps(date_column)
    step = step or step_seconds(seen)
    if not step:
        return None
    try:
        return [str(seen[-1] + timedelta(seconds=step * k)) for k in range(1, count + 1)]
    except OverflowError:
        message = (
            f"column {date_column!r}: the forecast times after {seen[-1]} pass the latest "
            "date there is (9999-12-31)"
        )
        raise _error(table.path, message, table.lines[-1]) from None
