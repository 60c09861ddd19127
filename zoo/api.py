"""The Python API: the same verbs as the command line, which is a thin layer over them.

    import zoo
    zoo.list_architectures()                       # ['elman-rnn', 'gru-regressor', ...]
    model = zoo.create("lstm-tagger", hidden_size=128)
    zoo.train(model, epochs=5)
    zoo.save(model, "tagger.safetensors")
    tagger = zoo.load("tagger.safetensors")
    tagger.predict("The dog ate the apple .")
    zoo.predict_file(tagger, "sentences.txt", output="tagged.txt")

Settings are one flat namespace over the model, data and training configs (see
`zoo.core.settings`); a name in two of them takes a prefix (`model.dropout`). The verbs that
use a trained model take a `zoo.Model` or the path of its file; the work is done by the
model's own methods (zoo/training/model.py) and the run job (zoo/training/job.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from zoo.core import config as cfg
from zoo.core.errors import ZooError
from zoo.core.modelfile import read_header
from zoo.core.registry import Registry, get_registry
from zoo.core.settings import split_trained
from zoo.toolkit.textfile import TextFile
from zoo.training import trainer
from zoo.training.datasets import load_data
from zoo.training.job import RunResult, resume, run
from zoo.training.model import Model, create, load, save
from zoo.training.progress import Progress

__all__ = [
    "Model",
    "RunResult",
    "count_parameters",
    "create",
    "evaluate",
    "list_architectures",
    "list_datasets",
    "load",
    "load_data",
    "predict",
    "predict_file",
    "resume",
    "run",
    "save",
    "train",
]

ModelOrPath = Model | str | os.PathLike[str]


def list_architectures(pattern: str | None = None, task: str | None = None) -> list[str]:
    """Installed architecture names, filtered by glob `pattern` and `task` when given."""
    return get_registry().list_architectures(pattern, task)


def list_datasets(pattern: str | None = None, task: str | None = None) -> list[str]:
    """Installed dataset names, filtered by glob `pattern` and `task` when given."""
    return get_registry().list_datasets(pattern, task)


def count_parameters(
    name: str, dataset: str | None = None, *, registry: Registry | None = None, **settings: Any
) -> int:
    """The parameter count of architecture `name` built for `dataset` with `settings`."""
    return create(name, dataset, registry=registry, **settings).num_parameters()


def train(
    model: Model,
    *,
    progress: bool | Progress = False,
    resume: trainer.Checkpoint | None = None,
    checkpoint: Callable[[trainer.Checkpoint], None] | None = None,
    checkpoint_every: int = 0,
    **settings: Any,
) -> trainer.TrainResult:
    """Train `model` on the data it was created with (`Model.fit`); `settings` override
    training settings (`epochs`, `lr`, ...). Returns what happened (steps, time, best
    validation scores)."""
    return model.fit(
        progress,
        resume=resume,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        **settings,
    )


def evaluate(
    model: ModelOrPath,
    data: str | os.PathLike[str] | None = None,
    *,
    dataset: str | None = None,
    split: str = "test",
    batch_size: int | None = None,
    device: str = "cpu",
    registry: Registry | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Metrics of a model (or model file) on a split of a dataset (`Model.evaluate`)."""
    reg = registry or get_registry()
    model, settings = _opened(model, reg, settings, "data", dataset)
    return model.evaluate(
        data,
        dataset=dataset,
        split=split,
        batch_size=batch_size,
        device=device,
        registry=reg,
        **settings,
    )


def predict(
    model: ModelOrPath,
    inputs: str | list[str],
    *,
    registry: Registry | None = None,
    **settings: Any,
) -> list[dict[str, Any]]:
    """Predictions for raw inputs from a model or model file (`Model.predict`)."""
    reg = registry or get_registry()
    model, settings = _opened(model, reg, settings, "predict")
    return model.predict(inputs, registry=reg, **settings)


def predict_file(
    model: ModelOrPath,
    path: str | os.PathLike[str] | TextFile,
    output: str | os.PathLike[str] | None = None,
    *,
    registry: Registry | None = None,
    **settings: Any,
) -> tuple[str, list[dict[str, Any]]]:
    """Predict from a file with a model or model file (`Model.predict_file`)."""
    reg = registry or get_registry()
    model, settings = _opened(model, reg, settings, "predict")
    return model.predict_file(path, output, registry=reg, **settings)


def _opened(
    model: ModelOrPath,
    reg: Registry,
    settings: dict[str, Any],
    kind: str,
    dataset: str | None = None,
) -> tuple[Model, dict[str, Any]]:
    """A model in hand: the model itself, or its file loaded with the model settings among
    `settings` (those that keep its tensors, `impl`); the rest, of `kind` (data settings or
    predict options), prefixed so that the model's method reads them as such."""
    if isinstance(model, Model):
        return model, settings
    header = _header(model)
    arch, own_dataset = header.get("architecture"), header.get("dataset")
    own = cfg.field_names(reg.architecture(arch).spec.config) if arch in reg.architectures else []
    changes, rest = split_trained(
        own, settings, kind, _kind_names(reg, arch, kind, dataset or own_dataset)
    )
    loaded = load(model, registry=reg, config=changes or None)
    return loaded, {f"{kind}.{key}": value for key, value in rest.items()}


def _header(path: str | os.PathLike[str]) -> dict[str, str]:
    """A model file's metadata, {} if unreadable (loading it then says what is wrong)."""
    try:
        return read_header(path)[0]
    except ZooError:
        return {}


def _kind_names(reg: Registry, arch: str | None, kind: str, dataset: str | None) -> list[str]:
    """The names of the data settings of `dataset`, or of `arch`'s predict options."""
    if kind == "data":
        return cfg.field_names(reg.dataset(dataset).spec.config) if dataset in reg.datasets else []
    spec = reg.architecture(arch).spec if arch in reg.architectures else None
    return cfg.field_names(spec.predict_config) if spec and spec.predict_config else []
