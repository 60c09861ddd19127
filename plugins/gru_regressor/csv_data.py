"""The `csv` dataset: sliding windows over a CSV time series, for the window-regression task.

Rows are time steps. The inputs of a window are the target column(s) followed by any feature
columns, over `input_length` rows; its outputs are the targets over the next `horizon` rows.
The file is cut in time order into a training, a validation and a test part (row counts or
fractions). Every column is z-scored with statistics of the training rows alone; they are
saved in the model file, so a saved forecaster takes and returns raw values.

Windows of the validation and test parts start `input_length` rows before their part (the
published ETT protocol), so the first forecast lands on the part's first row and every row
of the part is forecast. Examples are window start rows; `collate` cuts the windows out of one
array, so a batch costs two indexing operations.

The reading, the parts in time order (and why they are not `zoo.splits`' shuffled cut), the
z-scores and the windows are `zoo.toolkit.series`, which any forecaster or anomaly detector
over a CSV series shares; this module adds the settings of the GRU regressor's `csv` dataset:
which columns are targets and features, the presets, and the state its model reads. `zoo eval`
cuts any file it is given by the same settings (`--set split=0,0,1` scores a file whole).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from zoo.core.errors import DataError, SettingError, UsageError
from zoo.toolkit.data import Data
from zoo.toolkit.series import (
    Table,
    ZScore,
    check_split,
    check_windows,
    cut_windows,
    fit_zscore,
    part_ends,
    pick_date_column,
    read_table,
    seasonal_period,
    step_seconds,
    window_starts,
)
from zoo.toolkit.splits import SPLITS
from zoo.toolkit.textfile import read_text

from . import bigcsv
from .presets import GENERIC, PRESETS


@dataclass
class Plan:
    """The data settings with the preset and the generic defaults filled in."""

    target: tuple[str, ...] | None
    features: tuple[str, ...]
    date_column: str
    split: tuple[float, ...]
    input_length: int
    horizon: int
    stride: int
    season: int | None
    border_context: bool


def plan(config: Any) -> Plan:
    """Fill every setting left unset (None) from the preset, then from the generic defaults."""
    preset = PRESETS.get(config.preset, {})

    def pick(name: str) -> Any:
        value = getattr(config, name)
        if value is not None:
            return value
        return preset.get(name, GENERIC.get(name))

    split = tuple(pick("split"))
    check_split(split)
    return Plan(
        target=pick("target"),
        features=tuple(pick("features") or ()),
        date_column=preset.get("date_column", "auto")
        if config.date_column == "auto"
        else config.date_column,
        split=split,
        input_length=int(pick("input_length")),
        horizon=config.horizon,
        stride=config.stride,
        season=pick("season"),
        border_context=config.border_context,
    )


def choose_columns(table: Table, p: Plan) -> tuple[list[str], list[str], str | None]:
    """(targets, input columns (targets first), date column or None) named by the settings."""
    date = pick_date_column(table, p.date_column)
    if p.target is None:
        candidates = [c for c in table.header if c != date]
        if not candidates:
            raise DataError("no column besides the date column to forecast", path=table.path)
        targets = [candidates[-1]]
    else:
        targets = [table.header[table.index(t, option="target")] for t in p.target]
    named = f"target={','.join(p.target or ())}"
    if date is not None and date in targets:
        raise SettingError(f"{named}: {date!r} is the date column; choose a numeric column")
    if len(set(targets)) != len(targets):
        raise SettingError(f"{named}: a column is named twice")
    if p.features == ("all",):
        features = [c for c in table.header if c != date and c not in targets]
    else:
        features = [table.header[table.index(f, option="features")] for f in p.features]
        features = [f for f in dict.fromkeys(features) if f not in targets]
        if date is not None and date in features:
            raise SettingError(
                f"features={','.join(p.features)}: {date!r} is the date column, not a number"
            )
    return targets, targets + features, date


def load_csv(config: Any, state: dict[str, Any] | None) -> Data:
    """The loader zoo calls: `state` is None when training, the saved state when evaluating.
    A file larger than `bigcsv.STREAM_ABOVE` bytes is read in chunks, in bounded memory, to
    the very same Data (`bigcsv`)."""
    if not config.path:
        raise UsageError("dataset csv reads a file: give --data PATH (a CSV with a header)")
    p = plan(config)
    training = state is None

    def layout(table: Table) -> bigcsv.Layout:
        if training:
            targets, columns, date = choose_columns(table, p)
            return targets, columns, date, p.input_length, p.horizon
        return saved_layout(config, state, table)

    source = bigcsv.Streamed if bigcsv.wanted(config.path) else Whole
    read = source(config.path, layout)
    targets, columns, date, length, horizon = read.layout
    ends = part_ends(p.split, read.rows, read.path, state=state, fingerprint=read.fingerprint)
    if training:
        zscore = read.fit(ends[0])
        state = {
            "input_size": len(columns),
            "output_size": len(targets),
            "input_length": length,
            "horizon": horizon,
            "columns": columns,
            "targets": targets,
            "target_index": list(range(len(targets))),
            **zscore.state(),
            "date_column": date,
            "step_seconds": read.step,
            "season": p.season or seasonal_period(read.step),
            "fingerprint": read.fingerprint,
        }
    series = read.scaled(ZScore.from_state(state))
    context = length if p.border_context else 0
    splits = window_starts(ends, length, horizon, stride=p.stride, context=context)
    parts = SPLITS if training else ("test",)
    check_windows(splits, ends, length, horizon, path=read.path, parts=parts)
    summary = (
        f"csv {read.path}: {read.rows} rows; target {','.join(targets)}; "
        f"{len(columns)} input column(s); windows {'/'.join(str(len(splits[s])) for s in SPLITS)} "
        f"(train/valid/test) of {length} rows in, {horizon} out, stride {p.stride}; "
        + (f"z-scores from the first {ends[0]} rows" if training else "the model's z-scores")
    )
    return SeriesData(
        state=state,
        splits=splits,
        collate=Collate(series, length, horizon, len(targets)),
        summary=summary,
        info={"rows": read.rows, "borders": list(ends)},
    )


class Whole:
    """A CSV file read whole (`read_table`): what `bigcsv.Streamed` gives for a large file,
    from the file's text in memory."""

    def __init__(self, path: str, layout_of: Callable[[Table], bigcsv.Layout]):
        file = read_text(path)
        table = read_table(file)
        self.layout = layout_of(table)
        self.path, self.rows, self.fingerprint = table.path, len(table), file.fingerprint
        self.values = table.array(self.layout[1], option="columns")
        date = self.layout[2]
        self.step = step_seconds(table.timestamps(date)) if date is not None else None

    def fit(self, rows: int) -> ZScore:
        return fit_zscore(self.values[:rows], self.layout[1], path=self.path)

    def scaled(self, zscore: ZScore) -> np.ndarray:
        return zscore.apply(self.values, path=self.path)


def saved_layout(
    config: Any, state: dict[str, Any], table: Table
) -> tuple[list[str], list[str], str | None, int, int]:
    """(targets, input columns, date column, input_length, horizon) of a trained model, to
    read another file the same way. A setting asked for that the model fixes (its window,
    columns, date column, season) and that differs from it is refused: it would be ignored."""
    date = state.get("date_column")
    if date is not None and date not in table.header:
        date = None
    targets, columns = list(state["targets"]), list(state["columns"])
    length, horizon = int(state["input_length"]), int(state["horizon"])
    p = plan(config)
    features = [c for c in columns if c not in targets]
    asked = {
        "input_length": (config.input_length, length),
        "horizon": (config.horizon, horizon),
        "target": (_names(p.target), ",".join(targets)),
        "features": (_features(p.features, targets), ",".join(features) or "(none)"),
        "date_column": (None if config.date_column == "auto" else config.date_column, date),
        "season": (config.season, state.get("season")),
    }
    for name, (value, trained) in asked.items():
        if value is not None and value != trained:
            raise SettingError(f"{name}={value}: this model was trained with {name}={trained}")
    return targets, columns, date, length, horizon


def _names(columns: tuple[str, ...] | None) -> str | None:
    """Column names as a setting writes them (None: not given)."""
    return ",".join(columns) if columns else None


def _features(asked: tuple[str, ...], targets: list[str]) -> str | None:
    """The feature columns asked for besides the targets (None: not named one by one)."""
    if asked == ("all",) or not asked:
        return None
    return ",".join(f for f in dict.fromkeys(asked) if f not in targets) or "(none)"


class SeriesData(Data):
    """The `Data` of a series, whose examples are window start rows: a file of years of
    minute rows has millions of windows, so the seeded order of an epoch is one int32
    permutation (4 bytes a window, `Data.order`'s very permutation: the same batches) and its
    batches are views made when asked for, not a list of arrays made up front."""

    def order(
        self,
        split: str,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
    ) -> Sequence[np.ndarray]:
        n = self.size(split)
        if not shuffle or n == 0:
            return Batches(None, n, batch_size)
        dtype = torch.int32 if n < 2**31 else torch.int64
        return Batches(torch.randperm(n, generator=generator, dtype=dtype).numpy(), n, batch_size)


class Batches(Sequence[np.ndarray]):
    """Batches of positions `batch_size` at a time: slices of `order`, or of 0..n-1."""

    def __init__(self, order: np.ndarray | None, n: int, batch_size: int):
        self.order, self.n, self.size = order, n, batch_size

    def __len__(self) -> int:
        return -(-self.n // self.size)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        start, stop = i * self.size, min(self.n, (i + 1) * self.size)
        return np.arange(start, stop) if self.order is None else self.order[start:stop]

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))


class Collate:
    """Cuts windows out of the z-scored series: x [B, L, inputs], y [B, H, targets].

    A series mapped from a file (a streamed file's, or one the prepared-data cache maps) is
    read a window at a time with `os.preadv` instead of through the map: random windows
    touching a page each would bring in the pages around it too (the kernel's fault-around),
    and a long series' map would fill the process's resident memory. The numbers are the
    same."""

    def __init__(self, series: np.ndarray, length: int, horizon: int, targets: int):
        self.series, self.length, self.horizon = series, length, horizon
        self.targets = slice(0, targets)  # the targets are the first columns
        self._fd: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fd": None}

    def __call__(self, starts: Sequence[int]) -> dict[str, torch.Tensor]:
        fd = self._file()
        if fd is None:
            x, y = cut_windows(self.series, starts, self.length, self.horizon, targets=self.targets)
        else:
            rows = self._read(fd, starts)
            x = np.ascontiguousarray(rows[:, : self.length])
            y = np.ascontiguousarray(rows[:, self.length :, self.targets])
        return {"x": torch.from_numpy(x), "y": torch.from_numpy(y)}

    def _file(self) -> int | None:
        """A descriptor of the file the whole series is mapped from; None for an array in
        memory (or a view of part of a map)."""
        if self._fd is None:
            name = getattr(self.series, "filename", None)
            if not isinstance(self.series, np.memmap) or not name or self.series.ndim != 2:
                return None
            if os.path.getsize(name) != self.series.offset + self.series.nbytes:
                return None
            self._fd = os.open(name, os.O_RDONLY)
            weakref.finalize(self, os.close, self._fd)
        return self._fd

    def _read(self, fd: int, starts: Sequence[int]) -> np.ndarray:
        """Rows s .. s+length+horizon-1 of each start s: [windows, rows, columns]."""
        span, columns = self.length + self.horizon, self.series.shape[1]
        out = np.empty((len(starts), span, columns), dtype=self.series.dtype)
        row = columns * out.itemsize
        for i, start in enumerate(starts):
            got = os.preadv(fd, [out[i]], self.series.offset + int(start) * row)
            if got != out[i].nbytes:  # the file shrank under its map
                raise DataError(
                    "the series file is shorter than its map", path=self.series.filename
                )
        return out
