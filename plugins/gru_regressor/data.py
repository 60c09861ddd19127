"""Generated sine windows: sin(t) over a window in, cos(t) at the same steps out."""

from __future__ import annotations

import math
import random
from typing import Any

import torch

from zoo.toolkit.data import Data
from zoo.toolkit.splits import split


def load_sine_windows(config: Any, state: dict[str, Any] | None) -> Data:
    """`num_windows` windows at random phases (drawn from `split_seed`), split by the
    config's fractions; the same windows and split again when a trained model is evaluated."""
    rng = random.Random(config.split_seed)
    examples = []
    for _ in range(config.num_windows):
        phi = rng.uniform(0.0, 2.0 * math.pi)
        ts = [phi + k * config.step for k in range(max(config.input_length, config.horizon))]
        x = [[math.sin(t)] for t in ts[: config.input_length]]
        y = [[math.cos(t)] for t in ts[: config.horizon]]
        examples.append((x, y))
    splits = split(examples, config, state=state)
    state = state or {
        "input_size": 1,
        "output_size": 1,
        "input_length": config.input_length,
        "horizon": config.horizon,
    }
    sizes = "/".join(str(len(splits[s])) for s in ("train", "valid", "test"))
    return Data(
        state=state,
        splits=splits,
        collate=collate_windows,
        summary=f"sine-windows: {sizes} windows, {config.input_length} in, {config.horizon} out",
    )


def collate_windows(
    examples: list[tuple[list[list[float]], list[list[float]]]],
) -> dict[str, torch.Tensor]:
    return {
        "x": torch.tensor([x for x, _ in examples], dtype=torch.float32),
        "y": torch.tensor([y for _, y in examples], dtype=torch.float32),
    }
