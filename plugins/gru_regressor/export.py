"""The forecaster as an ONNX graph (`zoo export`, docs/export.md): a window of raw values in,
the forecast in raw values out, for any batch.

The z-score statistics of the training data are constants inside the graph, applied exactly
as `Forecaster.forecast` applies them, so the graph's answer is the model's in the data's own
units; they also travel in the file's data state, with the window length, the horizon and the
column names the runtime's `forecaster` recipe needs to read a CSV file.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.toolkit.exportspec import ExportSpec, Graph


class ForecastGraph(nn.Module):
    """forward(window [batch, input_length, features]) -> forecast [batch, horizon, targets]."""

    def __init__(self, forecaster: Any):
        super().__init__()
        self.forecaster = forecaster
        mean, std, t_mean, t_std = forecaster.scales()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.register_buffer("t_mean", t_mean)
        self.register_buffer("t_std", t_std)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return self.forecaster((window - self.mean) / self.std) * self.t_std + self.t_mean


def export_spec(forecaster: Any) -> ExportSpec:
    """The forecaster's graph, traced on two windows of the model's length."""
    state = forecaster.state
    length, features = int(state["input_length"]), int(state["input_size"])
    window = torch.linspace(-1.0, 1.0, 2 * length * features).reshape(2, length, features)
    graph = Graph(
        ForecastGraph(forecaster),
        {"window": window},
        ["forecast"],
        {"window": {0: "batch"}, "forecast": {0: "batch"}},
    )
    return ExportSpec("forecaster", [graph], {})
