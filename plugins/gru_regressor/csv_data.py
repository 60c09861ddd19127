"""The `csv` dataset: sliding windows over a CSV time series, for the window-regression task.

Rows are time steps. The inputs of a window are the target column(s) followed by any feature
columns, over `input_length` rows; its outputs are the targets over the next `horizon` rows.
The file is cut in time order into a training, a validation and a test part (row counts or
fractions). Every column is z-scored with statistics of the training rows alone; they are
saved in the model file, so a saved forecaster takes and returns raw values.

Windows of the validation and test parts start `input_length` rows before their part (the
published ETT protocol), so the first forecast lands on the part's first row and every row
of the part is forecast. Examples are window start rows; `collate` cuts the windows out of one
tensor, so a batch costs two indexing operations.

Why not `zoo.splits`, whose shuffled cut by fractions every other dataset shares: windows of a
series overlap, so shuffled windows would put rows of the validation and test windows in the
training windows, and a forecaster must be scored on a future it has not seen. The published
protocols also fix their parts as row counts (ETTh1: 8640/2880/2880), and the validation and
test windows read their context across the part's border. So the parts are contiguous blocks
in time order, cut by `split` (counts or fractions), and `zoo eval` cuts any file it is given
by the same settings (`--set split=0,0,1` scores a file whole).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from zoo.core.errors import DataError, SettingError, UsageError
from zoo.toolkit.data import Data
from zoo.toolkit.textfile import read_text

from .presets import GENERIC, PRESETS
from .series import (
    Table,
    find_date_column,
    read_table,
    season_of,
    step_seconds,
)

PARTS = ("train", "valid", "test")


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
    if len(split) != 3:
        raise SettingError(
            f"split={','.join(f'{v:g}' for v in split)}: expected three values, "
            "train,valid,test (row counts like 8640,2880,2880 or fractions like 0.7,0.1,0.2)"
        )
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


def borders(split: tuple[float, ...], rows: int, path: str) -> tuple[int, int, int]:
    """Row indices where the training, validation and test parts end."""
    if all(v <= 1 for v in split):
        if sum(split) > 1 + 1e-9:
            raise DataError(
                f"split fractions {','.join(f'{v:g}' for v in split)} add up to more than 1",
                path=path,
            )
        ends, total = [], 0.0
        for v in split:
            total += v
            ends.append(min(rows, round(rows * total)))
        return ends[0], ends[1], ends[2]
    if not all(float(v).is_integer() for v in split):
        raise DataError(
            f"split {','.join(f'{v:g}' for v in split)}: give row counts (whole numbers) or "
            "fractions (each at most 1), not a mix",
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


def choose_columns(table: Table, p: Plan) -> tuple[list[str], list[str], str | None]:
    """(targets, input columns (targets first), date column or None) named by the settings."""
    if p.date_column.lower() in ("", "none"):
        date = None
    elif p.date_column == "auto":
        date = find_date_column(table.header)
    else:
        date = table.header[table.index(p.date_column, option="date_column")]
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
    """The loader zoo calls: `state` is None when training, the saved state when evaluating."""
    if not config.path:
        raise UsageError("dataset csv reads a file: give --data PATH (a CSV with a header)")
    p = plan(config)
    file = read_text(config.path)
    table = read_table(file)
    training = state is None
    if training:
        targets, columns, date = choose_columns(table, p)
        length, horizon = p.input_length, p.horizon
    else:
        targets, columns, date, length, horizon = saved_layout(config, state, table)
    values = [table.numbers(c, option="columns") for c in columns]
    stamps = table.timestamps(date) if date is not None else None
    n_rows = len(table)
    if training or state.get("fingerprint", file.fingerprint) == file.fingerprint:
        ends = borders(p.split, n_rows, table.path)
    else:  # not the training file: every window of it is a test window
        ends = (0, 0, n_rows)
    if training:
        if ends[0] < 2:
            raise DataError(
                f"the training part has {ends[0]} row(s); z-scores need at least 2", path=table.path
            )
        mean, std = fit_zscore(values, columns, ends[0], table.path)
        step = step_seconds(stamps) if stamps is not None else None
        state = {
            "input_size": len(columns),
            "output_size": len(targets),
            "input_length": length,
            "horizon": horizon,
            "columns": columns,
            "targets": targets,
            "target_index": list(range(len(targets))),
            "mean": mean,
            "std": std,
            "date_column": date,
            "step_seconds": step,
            "season": p.season or season_of(step),
            "fingerprint": file.fingerprint,
        }
    series = standardised(values, state["mean"], state["std"], table.path)
    splits = windows(ends, length, horizon, p.stride, p.border_context)
    check_parts(splits, ends, length, horizon, table.path, parts=PARTS if training else ("test",))
    summary = (
        f"csv {table.path}: {n_rows} rows; target {','.join(targets)}; "
        f"{len(columns)} input column(s); windows {'/'.join(str(len(splits[s])) for s in PARTS)} "
        f"(train/valid/test) of {length} rows in, {horizon} out, stride {p.stride}; "
        + (f"z-scores from the first {ends[0]} rows" if training else "the model's z-scores")
    )
    return Data(
        state=state,
        splits=splits,
        collate=Collate(series, length, horizon, len(targets)),
        summary=summary,
        info={"rows": n_rows, "borders": list(ends)},
    )


def standardised(
    values: list[list[float]], mean: list[float], std: list[float], path: str
) -> torch.Tensor:
    """The columns z-scored with the training statistics, as one [rows, columns] tensor."""
    series = torch.tensor(
        [[(v - m) / s for v in col] for col, m, s in zip(values, mean, std)], dtype=torch.float32
    ).T.contiguous()
    if not bool(torch.isfinite(series).all()):
        raise DataError(
            "values too large for the model's 32-bit numbers once standardised", path=path
        )
    return series


def saved_layout(
    config: Any, state: dict[str, Any], table: Table
) -> tuple[list[str], list[str], str | None, int, int]:
    """(targets, input columns, date column, input_length, horizon) of a trained model, to
    read another file the same way; a different window asked for is refused."""
    date = state.get("date_column")
    if date is not None and date not in table.header:
        date = None
    length, horizon = int(state["input_length"]), int(state["horizon"])
    asked = {"input_length": config.input_length, "horizon": config.horizon}
    for name, trained in (("input_length", length), ("horizon", horizon)):
        if asked[name] is not None and asked[name] != trained:
            raise SettingError(
                f"{name}={asked[name]}: this model was trained with {name}={trained}"
            )
    return list(state["targets"]), list(state["columns"]), date, length, horizon


def fit_zscore(
    values: list[list[float]], columns: list[str], rows: int, path: str
) -> tuple[list[float], list[float]]:
    """Mean and (population) standard deviation of each column over its first `rows` values;
    a constant column gets 1, so it stays constant instead of dividing by zero."""
    mean, std = [], []
    for name, col in zip(columns, values):
        part = col[:rows]
        try:
            m = math.fsum(part) / rows
            s = math.sqrt(math.fsum((v - m) ** 2 for v in part) / rows)
        except OverflowError:
            m = s = math.inf
        if not (math.isfinite(m) and math.isfinite(s)):
            raise DataError(f"column {name!r}: values too large to standardise", path=path)
        mean.append(m)
        std.append(s if s > 1e-12 else 1.0)
    return mean, std


def windows(
    ends: tuple[int, int, int], length: int, horizon: int, stride: int, border_context: bool
) -> dict[str, range]:
    """The start rows of every window of each part. A training window lies inside the
    training rows; a validation or test window forecasts rows of its part only, and with
    `border_context` reads its input from the rows before the part where needed."""
    out = {}
    begin = 0
    for part, end in zip(PARTS, ends):
        first = begin if part == "train" or not border_context else max(0, begin - length)
        out[part] = range(first, end - length - horizon + 1, stride)
        begin = end
    return out


def check_parts(
    splits: dict[str, range],
    ends: tuple[int, int, int],
    length: int,
    horizon: int,
    path: str,
    *,
    parts: tuple[str, ...],
) -> None:
    """Each of `parts` that the split gives rows must hold at least one window."""
    names = {"train": "training", "valid": "validation", "test": "test"}
    begin = 0
    for part, end in zip(PARTS, ends):
        rows = end - begin
        if part in parts and rows > 0 and not splits[part]:
            raise DataError(
                f"the {names[part]} part (rows {begin + 1}-{end}, {rows} rows) holds no window "
                f"of {length} input + {horizon} forecast rows; shorten input_length or horizon, "
                "or change split",
                path=path,
            )
        begin = end


class Collate:
    """Cuts windows out of the z-scored series: x [B, L, inputs], y [B, H, targets]."""

    def __init__(self, series: torch.Tensor, length: int, horizon: int, targets: int):
        self.series, self.targets = series, targets
        self.x_offsets = torch.arange(length)
        self.y_offsets = torch.arange(length, length + horizon)

    def __call__(self, starts: list[int]) -> dict[str, torch.Tensor]:
        s = torch.as_tensor(starts, dtype=torch.long)[:, None]
        return {
            "x": self.series[s + self.x_offsets],
            "y": self.series[s + self.y_offsets, : self.targets],
        }
