"""zoo: a plugin-based model zoo for recurrent neural networks.

Importing `zoo` is cheap: the registry types and hook markers load at once, while everything
that needs torch (create, train, load, ...) is imported on first use, so `zoo list` and
`zoo --help` start fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from zoo.config import impl_param, param
from zoo.errors import DataError, ModelFileError, PluginError, SettingError, UsageError, ZooError
from zoo.hookspecs import hookimpl
from zoo.registry import Architecture, Dataset
from zoo.splits import Fractions, HeldOut

__version__ = "0.1.0"

_LAZY = {
    "create": "zoo.api",
    "train": "zoo.api",
    "evaluate": "zoo.api",
    "predict": "zoo.api",
    "predict_file": "zoo.api",
    "count_parameters": "zoo.api",
    "run": "zoo.api",
    "resume": "zoo.api",
    "load": "zoo.api",
    "save": "zoo.api",
    "list_architectures": "zoo.api",
    "list_datasets": "zoo.api",
    "Model": "zoo.model",
    "Network": "zoo.network",
    "Data": "zoo.data",
    "Vocab": "zoo.vocab",
    "Tokenizer": "zoo.vocab",
    "Confusion": "zoo.metrics",
    "TextFile": "zoo.textfile",
    "read_text": "zoo.textfile",
    "TrainConfig": "zoo.settings",
}

__all__ = [
    "Architecture",
    "DataError",
    "Dataset",
    "Fractions",
    "HeldOut",
    "ModelFileError",
    "PluginError",
    "SettingError",
    "UsageError",
    "ZooError",
    "__version__",
    "hookimpl",
    "impl_param",
    "param",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
