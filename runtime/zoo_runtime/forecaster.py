"""Recipe `forecaster` (gru-regressor): a window of raw numbers in, the next values out.

The graph holds the z-score statistics and undoes them on its output, so numbers go in and
come out in the data's own units. Numbers typed one per argument form one window, otherwise
each input is a window (`1,2 3,4`: two steps of two features); the last `input_length` steps
are used. A CSV file (`--input`) with the training file's columns gives the forecast of the
rows after its last, as CSV, with timestamps one training time step apart when it has the
date column; the file is read and checked as zoo reads it (`series.py`).
"""

from __future__ import annotations

from typing import Any

from . import series
from .model import FLOAT, Model, UsageError, float32, fmt, windows_of
from .onnxfile import DataError


class Forecaster(Model):
    kind = "forecaster"
    input_unit = "steps"

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
        x = float32([window])
        (out,) = self.run("model", {self.graphs["model"]["inputs"][0]: x})
        return [row[0] if len(row) == 1 else row for row in out[0].tolist()]

    def predict(self, inputs: list[str], **options: Any) -> list[dict[str, Any]]:
        self.resolve(options)
        results = []
        for window in windows_of(inputs, "window"):
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
        self.resolve(options)
        table = series.read_table(text, name)
        if len(table) < self.length:
            raise DataError(
                f"{name}: {len(table)} row(s); the model reads the last {self.length} rows, "
                "so give at least that"
            )
        columns = [table.numbers(c, option="columns")[-self.length :] for c in self.columns]
        values = self.forecast([list(step) for step in zip(*columns)])
        stamps = None
        if self.date is not None and self.date in table.header:
            stamps = series.next_timestamps(table, self.date, len(values), self.step)
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
