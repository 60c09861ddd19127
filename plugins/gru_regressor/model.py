"""The GRU regressor network and what zoo asks of it: build, loss, evaluate, predict.

    h = GRU(x_1 .. x_L)[last step, top layer]
    y = W h + b, reshaped to [horizon, outputs]

Tensor names are nn.GRU's and nn.Linear's own (`gru.weight_ih_l0`, `head.weight`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.data import parse_numbers
from zoo.errors import UsageError


class GRURegressor(nn.Module):
    def __init__(self, config: Any, input_size: int, output_size: int, horizon: int):
        super().__init__()
        self.horizon, self.output_size = horizon, output_size
        self.gru = nn.GRU(
            input_size,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, horizon * output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [batch, window, features] -> [batch, horizon, outputs]."""
        _, h = self.gru(x)
        return self.head(self.dropout(h[-1])).view(-1, self.horizon, self.output_size)


def build(config: Any, state: dict[str, Any], task: str) -> GRURegressor:
    return GRURegressor(
        config, int(state["input_size"]), int(state["output_size"]), int(state["horizon"])
    )


def loss(module: GRURegressor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.mse_loss(module(batch["x"]), batch["y"])


def evaluate(
    module: GRURegressor,
    batches: Iterable[dict[str, torch.Tensor]],
    state: dict[str, Any],
    task: str,
) -> dict[str, float]:
    se = ae = n = 0.0
    for batch in batches:
        diff = module(batch["x"]) - batch["y"]
        se += float((diff**2).sum())
        ae += float(diff.abs().sum())
        n += diff.numel()
    return {"loss": se / n, "mse": se / n, "mae": ae / n}


def predict(
    module: GRURegressor, inputs: list[str], state: dict[str, Any], task: str, options: Any
) -> list[dict[str, Any]]:
    """Numbers typed one per argument form one window; otherwise each input is a window."""
    if all(len(s.split()) == 1 for s in inputs):
        windows = [parse_numbers(" ".join(inputs))]
    else:
        windows = [parse_numbers(s) for s in inputs]
    length, features = int(state["input_length"]), int(state["input_size"])
    results = []
    for window in windows:
        if len(window) < length:
            raise UsageError(
                f"expected a window of {length} values (the model's input length), got {len(window)}"
            )
        if any(len(step) != features for step in window):
            raise UsageError(f"each step needs {features} comma-separated value(s)")
        window = window[-length:]
        out = module(torch.tensor([window], dtype=torch.float32))[0]
        values = [row[0] if len(row) == 1 else row for row in out.tolist()]
        results.append(
            {
                "input": [s[0] if len(s) == 1 else s for s in window],
                "output": values,
                "text": " ".join(
                    f"{v:.4f}" if isinstance(v, float) else ",".join(f"{u:.4f}" for u in v)
                    for v in values
                ),
            }
        )
    return results
