"""Generated sine windows: sin(t) over a window in, cos(t) at the same steps out."""

from __future__ import annotations

import math
import random
from typing import Any

import torch

from zoo.data import Data, split_by_fraction


def load_sine_windows(config: Any, state: dict[str, Any] | None) -> Data:
    rng = random.Random(config.split_seed)
    examples = []
    for _ in range(config.num_windows):
        phi = rng.uniform(0.0, 2.0 * math.pi)
        ts = [phi + k * config.step for k in range(max(config.input_length, config.horizon))]
        x = [[math.sin(t)] for t in ts[: config.input_length]]
        y = [[math.cos(t)] for t in ts[: config.horizon]]
        examples.append((x, y))
    valid_f, test_f = config.valid_fraction, config.test_fraction
    train, valid, test = split_by_fraction(
        examples, [1 - valid_f - test_f, valid_f, test_f], config.split_seed
    )
    state = state or {
        "input_size": 1,
        "output_size": 1,
        "input_length": config.input_length,
        "horizon": config.horizon,
    }
    return Data(
        state=state,
        splits={"train": train, "valid": valid, "test": test},
        collate=collate_windows,
        summary=f"sine-windows: {len(train)}/{len(valid)}/{len(test)} windows, "
        f"{config.input_length} in, {config.horizon} out",
    )


def collate_windows(
    examples: list[tuple[list[list[float]], list[list[float]]]],
) -> dict[str, torch.Tensor]:
    return {
        "x": torch.tensor([x for x, _ in examples], dtype=torch.float32),
        "y": torch.tensor([y for _, y in examples], dtype=torch.float32),
    }
