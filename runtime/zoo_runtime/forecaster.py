"""Recipe `forecaster` (gru-regressor): a window of raw numbers in, the next values out.

The graph holds the z-score statistics and undoes them on its output, so numbers go in and
come out in the data's own units. Numbers typed one per argument form one window, otherwise
each input is a window (`1,2 3,4`: two steps of two features); the last `input_length` steps
are used. A CSV file (`--input`) with the training file's columns gives the forecast of the
rows after its last, as CSV, with timestamps one training time step apart when it has the
date column.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from .model import FLOAT, Model, UsageError, fmt, windows_of


class Forecaster(Model):
    kind = "forecaster"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.length = self.state.integer("input_length", 1, 1_000_000)
        self.features = self.state.integer("input_size", 1, 100_000)
        self.horizon = self.state.integer("horizon", 1, 1_000_000)
        self.columns = self.state.strings("columns") if self.state.has("columns") else None
        if self.columns is not None:
            self.targets = self.state.strings("targets")
            self.date = self.state.text("date_column") if self.state.has("date_column") else None
            step = self.state.get("step_seconds")
            self.step = float(step) if isinstance(step, (int, float)) and step > 0 else None

    def expected_inputs(self) -> dict[str, tuple[str, int]]:
        return {name: (FLOAT, 3) for name in self.graphs["model"]["inputs"][:1]}

    def forecast(self, window: list[list[float]]) -> list[Any]:
        """Raw values in (input_length rows), raw values out: [H] or [H][targets]."""
        x = np.array([window], dtype=np.float32)
        (out,) = self.run("model", {self.graphs["model"]["inputs"][0]: x})
        return [row[0] if len(row) == 1 else row for row in out[0].tolist()]

    def predict(self, inputs: list[str], **options: Any) -> list[dict[str, Any]]:
        self.resolve(options)
        results = []
        for window in windows_of(inputs):
            if len(window) < self.length:
                raise UsageError(
                    f"expected a window of {self.length} values (the model's input length), "
                    f"got {len(window)}"
                )
            if any(len(step) != self.features for step in window):
                which = f" ({','.join(self.columns)})" if self.columns else ""
                raise UsageError(f"each step needs {self.features} comma-separated value(s){which}")
            window = window[-self.length :]
            values = self.forecast(window)
            results.append(
                {
                    "input": [s[0] if len(s) == 1 else s for s in window],
                    "output": values,
                    "text": " ".join(fmt(v) for v in values),
                }
            )
        return results

    def predict_file(self, text: str, name: str, **options: Any) -> tuple[str, list[dict]]:
        """A CSV file with the training columns: the forecast after its last row, as CSV."""
        if self.columns is None:
            return super().predict_file(text, name, **options)
        header, rows = read_csv(text, name)
        if len(rows) < self.length:
            raise UsageError(
                f"{name}: {len(rows)} row(s); the model reads the last {self.length} rows, so "
                "give at least that"
            )
        used = rows[-self.length :]
        columns = [numbers(header, used, c, name) for c in self.columns]
        values = self.forecast([list(step) for step in zip(*columns)])
        stamps = None
        if self.date is not None and self.date in header:
            stamps = next_times(header, rows, self.date, self.step, len(values), name)
        first = self.date if stamps is not None else "step"
        keys = stamps if stamps is not None else [str(k) for k in range(1, len(values) + 1)]
        lines = [",".join([first, *self.targets])]
        lines.extend(f"{key},{fmt(value)}" for key, value in zip(keys, values))
        prediction = {
            "input": name,
            "output": values,
            "timestamps": stamps,
            "targets": self.targets,
            "text": " ".join(fmt(v) for v in values),
        }
        return "\n".join(lines) + "\n", [prediction]


def read_csv(text: str, name: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV text; rows of the wrong width are a UsageError."""
    try:
        table = [row for row in csv.reader(io.StringIO(text)) if row]
    except csv.Error as e:
        raise UsageError(f"{name}: not CSV: {e}") from None
    if not table:
        raise UsageError(f"{name}: empty file; expected a header line and rows")
    header = [h.strip() for h in table[0]]
    for k, row in enumerate(table[1:], start=2):
        if len(row) != len(header):
            raise UsageError(f"{name}: row {k} has {len(row)} cells, the header {len(header)}")
    return header, table[1:]


def numbers(header: list[str], rows: list[list[str]], column: str, name: str) -> list[float]:
    if column not in header:
        raise UsageError(f"{name}: no column {column!r}; the header has: {', '.join(header)}")
    col = header.index(column)
    out = []
    for row in rows:
        try:
            value = float(row[col].strip())
        except ValueError:
            raise UsageError(
                f"{name}: column {column!r}: {row[col][:40]!r} is not a number"
            ) from None
        if not math.isfinite(value):
            raise UsageError(f"{name}: column {column!r}: {row[col]!r} is not a finite number")
        out.append(value)
    return out


def next_times(
    header: list[str], rows: list[list[str]], date: str, step: float | None, count: int, name: str
) -> list[str] | None:
    """Timestamps of the `count` rows after the last, one time step apart (the training
    data's step, else the file's last gap)."""
    col = header.index(date)
    try:
        seen = [datetime.fromisoformat(r[col].strip()).replace(tzinfo=None) for r in rows[-2:]]
    except ValueError:
        raise UsageError(f"{name}: column {date!r} holds a value that is not an ISO date") from None
    if not step and len(seen) == 2:
        step = (seen[1] - seen[0]).total_seconds()
    if not step:
        return None
    try:
        return [str(seen[-1] + timedelta(seconds=step * k)) for k in range(1, count + 1)]
    except OverflowError:
        raise UsageError(f"{name}: the forecast times pass the latest date there is") from None
