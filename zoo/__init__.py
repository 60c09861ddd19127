"""zoo: a plugin-based model zoo for recurrent neural networks.

This module is the public facade: the verbs of the Python API (`zoo.create`, `zoo.run`,
`zoo.load`, ...) and everything a plugin needs (`zoo.Architecture`, `zoo.Network`, `zoo.Data`,
`zoo.read_text`, ...). Behind it, the code is in layers, each a package that imports only from
the layers below it (docs/architecture.md; tests/core/test_layers.py keeps it so):

    zoo.core       torch-free: errors, configs, settings, specs, hooks, registry, model files
    zoo.toolkit    the plumbing plugins use: network, data, text files, vocabularies,
                   splits, numeric series, cells, metrics, padding, export specs
    zoo.training   building, training, checkpoints, several processes, the run job
    zoo.features   the run log, comparisons, plots, gates, cards, ONNX export, sweeps, seeds
    zoo.api        the Python verbs;  zoo.cli  the command line, one module per verb group

Importing `zoo` is cheap: the registry types and hook markers load at once, while everything
that needs torch is imported on first use, so `zoo list` and `zoo --help` start fast.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType
from typing import Any

from zoo.core.config import impl_param, param
from zoo.core.errors import (
    DataError,
    ModelFileError,
    OutOfMemory,
    PluginError,
    SettingError,
    UsageError,
    ZooError,
)
from zoo.core.hookspecs import hookimpl
from zoo.core.specs import Architecture, Dataset
from zoo.core.version import __version__
from zoo.toolkit.splits import Fractions, HeldOut

# Names imported on first use (most need torch): name -> the module that defines it.
_LAZY = {
    **dict.fromkeys(
        [
            "create",
            "train",
            "evaluate",
            "predict",
            "predict_file",
            "count_parameters",
            "run",
            "resume",
            "load",
            "save",
            "list_architectures",
            "list_datasets",
            "Model",
        ],
        "zoo.api",
    ),
    "TrainConfig": "zoo.core.settings",
    "Network": "zoo.toolkit.network",
    **dict.fromkeys(["Data", "pad", "move", "map_in_length_order"], "zoo.toolkit.data"),
    **dict.fromkeys(["Vocab", "Tokenizer"], "zoo.toolkit.vocab"),
    **dict.fromkeys(["TextFile", "read_text", "embedded", "stream_lines"], "zoo.toolkit.textfile"),
    "split": "zoo.toolkit.splits",
    **dict.fromkeys(
        [
            "Series",
            "read_series",
            "read_table",
            "ZScore",
            "fit_zscore",
            "part_ends",
            "window_starts",
            "check_windows",
            "cut_windows",
            "step_seconds",
            "seasonal_period",
            "next_timestamps",
        ],
        "zoo.toolkit.series",
    ),
    "Confusion": "zoo.toolkit.metrics",
    "recurrent_layer": "zoo.toolkit.cells",
    **dict.fromkeys(["ExportSpec", "Graph"], "zoo.toolkit.exportspec"),
}

__all__ = [
    "Architecture",
    "DataError",
    "Dataset",
    "Fractions",
    "HeldOut",
    "ModelFileError",
    "OutOfMemory",
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
    if f"zoo.{name}" in MOVED:  # `import zoo` then `zoo.config.build(...)`, as before
        return importlib.import_module(f"zoo.{name}")
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


# Where the modules of earlier releases went when zoo was cut into layers. `import zoo.data`
# (as plugins written before wrote) gives the very module `zoo.toolkit.data`, so their imports,
# attributes and monkeypatches keep working; new code names the layered path.
MOVED = {
    **{f"zoo.{m}": f"zoo.core.{m}" for m in ("config", "errors", "fileio", "hookspecs")},
    **{f"zoo.{m}": f"zoo.core.{m}" for m in ("modelfile", "registry", "settings")},
    **{f"zoo.{m}": f"zoo.toolkit.{m}" for m in ("cells", "data", "metrics", "network")},
    **{f"zoo.{m}": f"zoo.toolkit.{m}" for m in ("padded", "splits", "textfile", "vocab")},
    **{f"zoo.{m}": f"zoo.training.{m}" for m in ("checkpoint", "distributed", "events")},
    **{f"zoo.{m}": f"zoo.training.{m}" for m in ("guard", "launch", "model", "progress")},
    "zoo.trainer": "zoo.training.trainer",
    **{f"zoo.{m}": f"zoo.features.{m}" for m in ("card", "compare", "export", "gates")},
    **{f"zoo.{m}": f"zoo.features.{m}" for m in ("plots", "runconfig", "runlog", "seeds")},
    **{f"zoo.{m}": f"zoo.features.{m}" for m in ("subprocesses", "sweep", "sweep_report")},
    "zoo.sweep_space": "zoo.features.sweep_space",
    **{f"zoo.{m}_cli": f"zoo.cli.{m}" for m in ("runlog", "plot", "export", "sweep")},
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module name of `MOVED` and answers with the module at its new place."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: Any) -> ModuleType:
        module = importlib.import_module(MOVED[spec.name])
        self.own_spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """The module at its new place has run already; it keeps its own spec."""
        module.__spec__ = self.own_spec


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModules())
