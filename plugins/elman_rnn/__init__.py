"""Elman RNN: a multi-layer simple recurrent network that predicts one output per time step.

It serves two tasks: `step-regression` (a number per step: sin -> cos) and
`step-classification` (a symbol per step: hello -> ohlol). This module only registers; the
network lives in `model.py` and the data in `data.py`, imported when used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from zoo import Architecture, Dataset, hookimpl, param


@dataclass
class ElmanConfig:
    hidden_size: int = param(32, "hidden units per layer", min=1, max=65536)
    num_layers: int = param(1, "stacked recurrent layers", min=1, max=64)
    nonlinearity: Literal["tanh", "relu"] = param("tanh", "activation of the recurrence")
    bidirectional: bool = param(False, "also read each sequence backwards")
    dropout: float = param(0.0, "dropout between stacked layers", min=0.0, max=0.99)
    embedding_dim: int = param(
        0, "symbol embedding size for step-classification (0: one-hot input)", min=0, max=65536
    )


@dataclass
class SineCosineConfig:
    num_sequences: int = param(512, "sequences to generate", min=3, max=10_000_000)
    length: int = param(20, "time steps per sequence", min=1, max=100_000)
    step: float = param(0.3, "time between steps (radians)", min=0.0)
    valid_fraction: float = param(0.1, "share of sequences for validation", min=0.0, max=0.9)
    test_fraction: float = param(0.1, "share of sequences for the test", min=0.0, max=0.9)
    split_seed: int = param(0, "seed of the generated phases and of the split", min=0)


@dataclass
class CharPairsConfig:
    path: str | None = param(
        None, "file of 'input<TAB>target' lines of equal length (default: hello -> ohlol)"
    )
    valid_fraction: float = param(0.0, "share of pairs for validation", min=0.0, max=0.9)
    test_fraction: float = param(0.0, "share of pairs for the test", min=0.0, max=0.9)
    split_seed: int = param(0, "seed of the split", min=0)


@hookimpl
def register_architectures(register):
    register(
        Architecture(
            name="elman-rnn",
            description="Multi-layer Elman RNN (tanh or relu) with one output per time step",
            tasks=("step-regression", "step-classification"),
            config=ElmanConfig,
            default_dataset="sine-cosine",
            implementation="zoo_plugins.elman_rnn.model",
            train_defaults={"lr": 0.01, "grad_clip": 1.0},
            dataset_defaults={"char-pairs": {"epochs": 60, "lr": 0.05}},
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="sine-cosine",
            description="sin(t) in, cos(t) out at every step, over random phases (generated)",
            task="step-regression",
            config=SineCosineConfig,
            loader="zoo_plugins.elman_rnn.data:load_sine_cosine",
            train_defaults={"epochs": 30, "batch_size": 32},
        )
    )
    register(
        Dataset(
            name="char-pairs",
            description="One symbol out per symbol in: 'hello' -> 'ohlol' (or a file of pairs)",
            task="step-classification",
            config=CharPairsConfig,
            loader="zoo_plugins.elman_rnn.data:load_char_pairs",
            train_defaults={"batch_size": 16},
        )
    )
