"""GRU regressor: reads a window of numbers and predicts the next values all at once.

Task `window-regression`: a window of L steps (F features) in, H steps (T targets) out. The
built-in data is the teaching example: 10 steps of sin(t) in, cos(t) at the same 10 steps out.
"""

from __future__ import annotations

from dataclasses import dataclass

from zoo import Architecture, Dataset, hookimpl, param


@dataclass
class GRURegressorConfig:
    hidden_size: int = param(64, "hidden units per layer", min=1, max=65536)
    num_layers: int = param(1, "stacked GRU layers", min=1, max=64)
    dropout: float = param(
        0.0, "dropout between stacked layers and before the head", min=0.0, max=0.99
    )


@dataclass
class SineWindowsConfig:
    num_windows: int = param(2000, "windows to generate", min=3, max=10_000_000)
    input_length: int = param(10, "steps of sin(t) in each window", min=1, max=100_000)
    horizon: int = param(10, "values of cos(t) to predict", min=1, max=100_000)
    step: float = param(0.1, "time between steps (radians)", min=0.0)
    valid_fraction: float = param(0.1, "share of windows for validation", min=0.0, max=0.9)
    test_fraction: float = param(0.1, "share of windows for the test", min=0.0, max=0.9)
    split_seed: int = param(0, "seed of the generated phases and of the split", min=0)


@hookimpl
def register_architectures(register):
    register(
        Architecture(
            name="gru-regressor",
            description="GRU encoder over a window with a linear head predicting all values at once",
            tasks=("window-regression",),
            config=GRURegressorConfig,
            default_dataset="sine-windows",
            implementation="zoo_plugins.gru_regressor.model",
            train_defaults={"lr": 0.005, "grad_clip": 1.0},
            monitor=("mse", "min"),
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="sine-windows",
            description="Windows of 10 sin(t) values -> the 10 cos(t) values at the same times (generated)",
            task="window-regression",
            config=SineWindowsConfig,
            loader="zoo_plugins.gru_regressor.data:load_sine_windows",
            train_defaults={"epochs": 40, "batch_size": 32},
        )
    )
