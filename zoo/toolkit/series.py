"""Numeric time series from CSV files: reading, parts in time order, z-scores and windows.

The plumbing every forecaster or anomaly detector over windows of a CSV series needs, in one
place, so that a plugin uses it instead of copying another's:

- `read_table`, `read_series`: a header line naming the columns, then one row per time step.
  Everything a user can get wrong in such a file (not UTF-8, a row with a different number of
  columns, a value that is not a finite number, an unknown column name, too few rows) is one
  `DataError` in zoo's one format, `PATH:LINE: ...`, naming the column where there is one.
  Decoding is `zoo.toolkit.textfile`'s; this module only parses.
- `part_ends`: the training, validation and test parts, contiguous blocks in time order.
- `fit_zscore` -> `ZScore`: per-column mean and deviation of the training rows alone,
  JSON-ready for a dataset's `state` (so saved in the model file) and applied again to
  whatever a trained model reads, so it takes and gives raw values.
- `window_starts`, `cut_windows`: windows of `length` input rows (and, to forecast, the next
  `horizon` rows as targets), `stride` rows apart; a loader's examples are window start rows
  and its collate cuts a batch out of the series with two indexing operations.

Why not `zoo.toolkit.splits`, whose shuffled cut by fractions every other dataset shares:
windows of a series overlap, so shuffled windows would put rows of the validation and test
windows in the training windows, and a forecaster must be scored on a future it has not
seen. The published protocols also fix their parts as row counts (ETTh1: 8640/2880/2880), and
validation and test windows read their context across the part's border.

No torch here: arrays are numpy (a collate turns a batch into tensors with
`torch.from_numpy`), and `zoo predict --input`, which hands over the file it already read,
shares the reader with the loaders.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from zoo.core.errors import DataError, SettingError
from zoo.toolkit.splits import SPLITS
from zoo.toolkit.textfile import TextFile, read_text

DATE_NAMES = ("date", "datetime", "time", "timestamp", "ds")
PART_NAMES = {"train": "training", "valid": "validation", "test": "test"}


# ------------------------------------------------------------------------------ reading
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
        """The position of column `name`; a DataError listing the columns when unknown,
        beginning with `option`, the setting that named it."""
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
        return [
            parse_number(row[col], name, self.path, line)
            for row, line in zip(self.rows, self.lines)
        ]

    def array(self, names: Sequence[str], *, option: str) -> np.ndarray:
        """Columns `names` as one [rows, columns] float64 array: the file's own numbers,
        exactly (each cell through `float`), checked column after column."""
        out = np.empty((len(self), len(names)), dtype=np.float64)
        for i, name in enumerate(names):
            out[:, i] = self.numbers(name, option=option)
        return out

    def timestamps(self, name: str) -> list[datetime]:
        """Column `name` as ISO dates/times (2016-07-01 00:00:00), strictly increasing."""
        col = self.index(name, option="date_column")
        out: list[datetime] = []
        for row, line in zip(self.rows, self.lines):
            out.append(parse_stamp(row[col], out[-1] if out else None, name, self.path, line))
        return out


def parse_number(cell: str, name: str, path: str, line: int) -> float:
    """One cell of column `name` as a finite float, or the DataError naming its line: the one
    rule of `Table.numbers` and of a reader that streams a large file."""
    text = cell.strip()
    try:
        value = float(text)
    except ValueError:
        what = "an empty cell" if not text else repr(text[:40])
        raise DataError(f"column {name!r}: {what} is not a number", path=path, line=line) from None
    if not math.isfinite(value):
        raise DataError(f"column {name!r}: {text!r} is not a finite number", path=path, line=line)
    return value


def parse_stamp(cell: str, previous: datetime | None, name: str, path: str, line: int) -> datetime:
    """One cell of the date column `name` as a datetime (time zone dropped) after `previous`,
    or the DataError naming its line (`Table.timestamps`, and a streamed large file)."""
    text = cell.strip()
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise DataError(
            f"column {name!r}: {text[:40]!r} is not a date (expected ISO form, "
            "e.g. 2016-07-01 00:00:00)",
            path=path,
            line=line,
        ) from None
    if stamp.tzinfo is not None:
        stamp = stamp.replace(tzinfo=None)
    if previous is not None and stamp <= previous:
        raise DataError(
            f"column {name!r}: {text!r} does not come after the previous row's time",
            path=path,
            line=line,
        )
    return stamp


def read_table(source: str | os.PathLike[str] | TextFile) -> Table:
    """Parse a CSV file with a header (a path, or a file already read); blank lines are
    skipped, every row has every column."""
    file = source if isinstance(source, TextFile) else read_text(source)
    name = file.path
    if not file.text.strip():
        raise file.error("the file is empty; expected a header line and rows of numbers")
    found = table_rows(io.StringIO(file.text, newline=""), name)
    first = next(found, None)
    if first is None:  # pragma: no cover - text.strip() was non-empty, so some row was seen
        raise file.error("no header line")
    rows: list[list[str]] = []
    lines: list[int] = []
    for line, row in found:
        rows.append(row)
        lines.append(line)
    if not rows:
        raise file.error("a header but no rows of data")
    return Table(name, first[1], rows, lines)


def table_rows(lines: Iterable[str], path: str) -> Iterator[tuple[int, list[str]]]:
    """(file line, cells) of each row of a CSV text given as its lines, ends kept (a file,
    `io.StringIO(text, newline="")`, or a large file's lines read in chunks): the header first
    (checked, names stripped), then each data row, blank rows skipped, each with the header's
    number of columns. The one parser of `read_table` and of a reader streaming a large file,
    so both give the same rows and the same errors, line for line."""
    reader = csv.reader(lines)
    header: list[str] | None = None
    start = 1
    try:
        for row in reader:
            line, start = start, reader.line_num + 1
            if not row or all(not cell.strip() for cell in row):
                continue
            if header is None:
                header = _check_header(row, path, line)
                yield line, header
            elif len(row) != len(header):
                raise DataError(
                    f"{len(row)} columns, but the header has {len(header)}", path=path, line=line
                )
            else:
                yield line, row
    except csv.Error as e:
        raise DataError(f"not valid CSV ({e})", path=path, line=reader.line_num or None) from None


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


def pick_date_column(table: Table, setting: str = "auto") -> str | None:
    """The column of timestamps a `date_column` setting names: `auto` finds one by its name
    (`find_date_column`), `none` (or empty) means the file has none, anything else must be
    a column of the header."""
    if setting.lower() in ("", "none"):
        return None
    if setting == "auto":
        return find_date_column(table.header)
    return table.header[table.index(setting, option="date_column")]


@dataclass(frozen=True)
class Series:
    """Numeric columns of a CSV file, ready for a loader: `values` [rows, columns] float64
    (the file's own numbers: z-scores come later, from the training rows), with the file line
    of each row, the timestamps when there is a date column, and the file's fingerprint (how
    a loader knows it is evaluating the very file it was trained on; see `part_ends`)."""

    path: str
    columns: list[str]
    values: np.ndarray
    lines: list[int]
    date_column: str | None
    timestamps: list[datetime] | None
    fingerprint: str

    def __len__(self) -> int:
        return len(self.lines)

    def select(self, names: Sequence[str], *, option: str = "columns") -> np.ndarray:
        """Columns `names` of `values`, [rows, len(names)] in that order: the columns a
        trained model reads, looked for in whatever file it is given; one missing is a
        DataError naming the file and the numeric columns it has."""
        missing = [name for name in names if name not in self.columns]
        if missing:
            raise DataError(
                f"{option}: no column {missing[0]!r}; the file's numeric columns are: "
                + ", ".join(self.columns),
                path=self.path,
                line=1,
            )
        return self.values[:, [self.columns.index(name) for name in names]]


def read_series(
    source: str | os.PathLike[str] | TextFile,
    columns: Sequence[str] | None = None,
    *,
    date_column: str = "auto",
    min_rows: int = 1,
    option: str = "columns",
) -> Series:
    """Read the numeric `columns` of a CSV file (default: every column but the date column).

    `date_column` is a setting as `pick_date_column` reads it; `option` names the setting
    that chose the columns in the error for an unknown one; `min_rows` is the fewest rows the
    caller can use (input_length + horizon for one window), fewer is a DataError at the last
    row's line."""
    file = source if isinstance(source, TextFile) else read_text(source)
    table = read_table(file)
    date = pick_date_column(table, date_column)
    if columns is None:
        names = [c for c in table.header if c != date]
    else:
        names = [table.header[table.index(c, option=option)] for c in columns]
    if date is not None and date in names:
        raise file.error(f"{option}: {date!r} is the date column, not a number", 1)
    if not names:
        raise file.error("no numeric column besides the date column", 1)
    if len(table) < min_rows:
        raise file.error(
            f"the file ends after {len(table)} row(s) of data; at least {min_rows} are needed",
            table.lines[-1],
        )
    values = table.array(names, option=option)
    stamps = table.timestamps(date) if date is not None else None
    return Series(file.path, names, values, table.lines, date, stamps, file.fingerprint)


# ------------------------------------------------------------------------------ time steps
def step_seconds(stamps: Sequence[datetime]) -> float | None:
    """The most common gap between consecutive timestamps, in seconds (None for < 2 rows);
    the shortest of equally common gaps."""
    if len(stamps) < 2:
        return None
    gaps: dict[float, int] = {}
    for a, b in itertools.pairwise(stamps):
        count_gap(gaps, a, b)
    return most_common_gap(gaps)


def count_gap(gaps: dict[float, int], a: datetime, b: datetime) -> None:
    """Count the gap from `a` to `b` (seconds) in `gaps`: `step_seconds` one pair at a time,
    for a reader that never holds every timestamp."""
    gap = (b - a).total_seconds()
    gaps[gap] = gaps.get(gap, 0) + 1


def most_common_gap(gaps: Mapping[float, int]) -> float | None:
    """The step `step_seconds` gives from counted gaps: the most common, the shortest of a
    tie; None for no gap."""
    return max(gaps, key=lambda g: (gaps[g], -g)) if gaps else None


def seasonal_period(step: float | None) -> int | None:
    """The natural seasonal period, in rows, of data sampled every `step` seconds: a day of
    rows below daily steps (hourly: 24, quarter-hourly: 96), a week of days, a year of weeks;
    None for other steps. The period of a seasonal-naive baseline (repeat the last season)."""
    if step is None:
        return None
    day, week = 86400.0, 7 * 86400.0
    if step < day and day % step == 0:
        return int(day // step)
    if step == day:
        return 7
    if step == week:
        return 52
    return None


def next_timestamps(
    table: Table, date_column: str, count: int, step: float | None = None
) -> list[str] | None:
    """The timestamps of the `count` rows after the table's last, one `step` (seconds) apart:
    the training data's step when given, else the table's own; None when there is no step to
    go by. What a forecaster prints beside the rows it forecasts."""
    seen = table.timestamps(date_column)
    step = step or step_seconds(seen)
    if not step:
        return None
    try:
        return [str(seen[-1] + timedelta(seconds=step * k)) for k in range(1, count + 1)]
    except OverflowError:
        raise DataError(
            f"column {date_column!r}: the forecast times after {seen[-1]} pass the latest "
            "date there is (9999-12-31)",
            path=table.path,
            line=table.lines[-1],
        ) from None


# ------------------------------------------------------------------------------ parts
def check_split(split: Sequence[float]) -> tuple[float, float, float]:
    """A `split` setting as three values, train,valid,test; any other count is a
    SettingError naming the setting."""
    if len(split) != 3:
        raise SettingError(
            f"split={','.join(f'{v:g}' for v in split)}: expected three values, "
            "train,valid,test (row counts like 8640,2880,2880 or fractions like 0.7,0.1,0.2)"
        )
    return float(split[0]), float(split[1]), float(split[2])


def part_ends(
    split: Sequence[float],
    rows: int,
    path: str,
    *,
    state: Mapping[str, Any] | None = None,
    fingerprint: str | None = None,
) -> tuple[int, int, int]:
    """Row indices where the training, validation and test parts end, the parts contiguous in
    time order: `split` is three row counts (8640,2880,2880; together at most `rows`) or three
    fractions of `rows` (0.7,0.1,0.2; together at most 1). Evaluating (`state` given) a file
    other than the one trained on (`fingerprint` differs from the state's), every row is test:
    (0, 0, rows), as `zoo.toolkit.splits.split` does."""
    split = check_split(split)
    if state is not None and state.get("fingerprint", fingerprint) != fingerprint:
        return 0, 0, rows
    shown = ",".join(f"{v:g}" for v in split)
    if all(v <= 1 for v in split):
        if sum(split) > 1 + 1e-9:
            raise DataError(f"split fractions {shown} add up to more than 1", path=path)
        ends, total = [], 0.0
        for v in split:
            total += v
            ends.append(min(rows, round(rows * total)))
        return ends[0], ends[1], ends[2]
    if not all(v.is_integer() for v in split):
        raise DataError(
            f"split {shown}: give row counts (whole numbers) or fractions (each at most 1), "
            "not a mix",
            path=path,
        )
    counts = [int(v) for v in split]
    if sum(counts) > rows:
        raise DataError(
            f"split asks for {sum(counts)} rows ({'+'.join(map(str, counts))}); "
            f"the file has {rows}",
            path=path,
        )
    return counts[0], counts[0] + counts[1], sum(counts)


# ------------------------------------------------------------------------------ z-scores
@dataclass(frozen=True)
class ZScore:
    """Per-column mean and (population) standard deviation of the training rows.

    JSON-ready: `state()` is {"mean": [...], "std": [...]}, to merge into a dataset's state
    (saved in the model file); `from_state` reads it back, so a trained model scales the new
    data it reads exactly as it scaled its training data."""

    mean: list[float]
    std: list[float]

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ZScore:
        return cls([float(v) for v in state["mean"]], [float(v) for v in state["std"]])

    def state(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    def apply(
        self, values: np.ndarray, *, dtype: Any = np.float32, path: str | None = None
    ) -> np.ndarray:
        """(values - mean) / std per column of [rows, columns] `values`, computed in float64
        and rounded to `dtype` once (float32: what a network reads). A value too large for
        `dtype` once standardised is a DataError: it would reach the network as infinity."""
        raw = np.asarray(values, dtype=np.float64)
        with np.errstate(over="ignore"):
            scaled = ((raw - np.array(self.mean)) / np.array(self.std)).astype(dtype)
        if not np.isfinite(scaled).all():
            bits = np.dtype(dtype).itemsize * 8
            raise DataError(
                f"values too large for the model's {bits}-bit numbers once standardised",
                path=path,
            )
        return scaled

    def undo(self, scaled: np.ndarray, *, columns: Sequence[int] | None = None) -> np.ndarray:
        """Raw values (float64) from standardised ones: scaled * std + mean. `columns` are the
        positions, among the fitted columns, of the last axis of `scaled` (a forecast of the
        targets alone); default: all of them."""
        index = list(range(len(self.mean))) if columns is None else list(columns)
        std, mean = np.array(self.std)[index], np.array(self.mean)[index]
        return np.asarray(scaled, dtype=np.float64) * std + mean


def fit_zscore(
    train_rows: np.ndarray, columns: Sequence[str], *, path: str | None = None
) -> ZScore:
    """The z-score statistics of `train_rows` [rows, columns], which must be the training
    part alone: statistics of validation or test rows would leak the future they score.

    A column constant over these rows gets std 1, so it stays constant (at 0) instead of
    dividing by zero. Sums are exact (`math.fsum`): the statistics do not depend on the order
    of the rows or on numpy's summation. Fewer than 2 rows, or values whose squares overflow,
    are a DataError naming `path` (and the column)."""
    rows = len(train_rows)
    if rows < 2:
        raise DataError(f"the training part has {rows} row(s); z-scores need at least 2", path=path)
    table = np.asarray(train_rows, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != len(columns):
        raise ValueError(f"values of shape {table.shape}, but {len(columns)} column names")
    parts = table.T.tolist()
    return zscore_of(lambda i: parts[i], rows, columns, path=path)


def zscore_of(
    column: Callable[[int], Iterable[float]],
    rows: int,
    columns: Sequence[str],
    *,
    path: str | None = None,
) -> ZScore:
    """`fit_zscore` over columns given one at a time: `column(i)` gives the `rows` training
    values of column i (as Python floats), and is called twice, for the mean and then the
    deviation. A reader that streams a large file passes its column files, read in blocks:
    with `math.fsum` the statistics are exactly those of the file read whole."""
    if rows < 2:
        raise DataError(f"the training part has {rows} row(s); z-scores need at least 2", path=path)
    mean, std = [], []
    for i, name in enumerate(columns):
        try:
            m = math.fsum(column(i)) / rows
            s = math.sqrt(math.fsum((v - m) ** 2 for v in column(i)) / rows)
        except OverflowError:
            m = s = math.inf
        if not (math.isfinite(m) and math.isfinite(s)):
            raise DataError(f"column {name!r}: values too large to standardise", path=path)
        mean.append(m)
        std.append(s if s > 1e-12 else 1.0)
    return ZScore(mean, std)


# ------------------------------------------------------------------------------ windows
def window_starts(
    ends: Sequence[int], length: int, horizon: int = 0, *, stride: int = 1, context: int = 0
) -> dict[str, range]:
    """The first row of every window of each part (train, valid, test), `stride` rows apart.

    A window is `length` input rows and the `horizon` rows after them (a forecaster's
    targets; 0 for an autoencoder, whose window is its own target), and ends inside its part.
    A training window lies wholly in the training rows; a validation or test window may start
    up to `context` rows before its part, reading them as input: `context=length` with a
    horizon (the published ETT protocol) puts the first forecast on the part's first row, so
    every row of the part is forecast."""
    out, begin = {}, 0
    for part, end in zip(SPLITS, ends):
        first = begin if part == "train" else max(0, begin - context)
        out[part] = range(first, end - length - horizon + 1, stride)
        begin = end
    return out


def check_windows(
    starts: Mapping[str, Sequence[int]],
    ends: Sequence[int],
    length: int,
    horizon: int = 0,
    *,
    path: str,
    parts: Sequence[str] = SPLITS,
) -> None:
    """Each of `parts` that has rows must hold at least one window: a DataError naming the
    part's rows otherwise (its rows are too few for `length` + `horizon`)."""
    begin = 0
    for part, end in zip(SPLITS, ends):
        rows = end - begin
        if part in parts and rows > 0 and not starts[part]:
            window = f"{length} input + {horizon} forecast rows" if horizon else f"{length} rows"
            shorten = "input_length or horizon" if horizon else "input_length"
            raise DataError(
                f"the {PART_NAMES[part]} part (rows {begin + 1}-{end}, {rows} rows) holds no "
                f"window of {window}; shorten {shorten}, or change split",
                path=path,
            )
        begin = end


def cut_windows(
    series: np.ndarray,
    starts: Sequence[int],
    length: int,
    horizon: int = 0,
    *,
    targets: Sequence[int] | slice = slice(None),
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs [windows, length, columns], targets [windows, horizon, target columns]) of the
    windows beginning at rows `starts` of `series` [rows, columns]: rows s .. s+length-1,
    then the next `horizon` rows of the `targets` columns (positions or a slice; default
    all). With horizon 0 the targets are empty: an autoencoder reconstructs the inputs."""
    first = np.asarray(starts, dtype=np.int64).reshape(-1, 1)
    inputs = series[first + np.arange(length)]
    following = series[first + np.arange(length, length + horizon)]
    return inputs, np.ascontiguousarray(following[:, :, targets])
