"""A zoo model: the plugin's network plus everything needed to rebuild, train and use it.

    model = create("lstm-tagger", hidden_size=128)     # build it for its data
    model.fit(epochs=5)                                # train (zoo/training/trainer.py)
    model.evaluate(split="valid"); model.predict(["The dog ate the apple ."])
    model.save("tagger.safetensors"); load("tagger.safetensors")

`save` writes one self-describing `.safetensors` file (zoo/core/modelfile.py); `load` rebuilds
it from that file alone, resolving the architecture through the registry and checking the
tensors before allocating them (zoo/training/rebuild.py). The methods are the Python API's
verbs for a model in hand; `zoo.api` adds the same verbs for a model file.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import safetensors
import safetensors.torch
import torch

from zoo.core import config as cfg
from zoo.core import limits, modelfile
from zoo.core.errors import DataError, ModelFileError, UsageError
from zoo.core.fileio import atomic_write, atomic_write_text, check_writable
from zoo.core.registry import Plugin, Registry, get_registry
from zoo.core.settings import TrainConfig, predict_options, resolve, split_trained, with_paths
from zoo.core.specs import Architecture
from zoo.core.version import __version__
from zoo.toolkit.data import Data
from zoo.toolkit.network import Network
from zoo.toolkit.textfile import TextFile, read_text
from zoo.training import distributed, guard, trainer
from zoo.training.datasets import data_for_model, load_data
from zoo.training.events import TrainingEvents
from zoo.training.progress import Progress
from zoo.training.rebuild import (
    TensorMismatch,
    build_checked,
    file_configs,
    installed,
    reshaping,
)


@dataclass
class Model:
    """A network with its names, configs, data state (vocabularies, normalisation) and metrics."""

    architecture: Architecture
    dataset: str
    task: str
    config: Any
    data_config: Any
    train_config: TrainConfig
    state: dict[str, Any]
    module: Network
    plugin: Plugin
    metrics: dict[str, Any] = field(default_factory=dict)
    data: Data | None = None

    @property
    def name(self) -> str:
        return self.architecture.name

    @property
    def label(self) -> str:
        """How errors name the plugin code behind this model."""
        return f"architecture {self.name!r} ({self.plugin.label})"

    @property
    def checked(self) -> guard.Checked:
        """The network's methods, called so that a failure names the plugin."""
        return guard.Checked(self.module, self.label)

    def num_parameters(self) -> int:
        """Trainable and frozen parameters; buffers (running statistics, a calibrated
        threshold) are not parameters and are not counted."""
        return sum(p.numel() for p in self.module.parameters())

    def __repr__(self) -> str:
        return (
            f"<zoo.Model {self.name} on {self.dataset} ({self.task}), "
            f"{self.num_parameters():,} parameters>"
        )

    # ------------------------------------------------------------------------ the verbs
    def fit(
        self,
        progress: bool | Progress = False,
        *,
        resume: trainer.Checkpoint | None = None,
        checkpoint: Callable[[trainer.Checkpoint], None] | None = None,
        checkpoint_every: int = 0,
        **settings: Any,
    ) -> trainer.TrainResult:
        """Train on the data the model was created with; `settings` override training
        settings (`epochs`, `lr`, ...). Ctrl-C stops cleanly after the current step
        (TrainingInterrupted); `checkpoint`, when given, is called then and every
        `checkpoint_every` steps with a `trainer.Checkpoint` that `resume` continues from."""
        if self.data is None:
            raise UsageError(
                "this model has no training data attached (it was loaded from a file); "
                "create it with zoo.create(...) to train"
            )
        if settings:
            self.train_config = cfg.replace(self.train_config, settings)
        shown = progress if isinstance(progress, Progress) else Progress(enabled=bool(progress))
        result = trainer.fit(
            self.checked,
            self.data,
            self.train_config,
            monitor=self.architecture.monitor,
            headline=self.architecture.headline_metrics(),
            progress=shown,
            resume=resume,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            events=TrainingEvents(get_registry(), self.description()),
        )
        self.metrics["training"] = {
            **result.as_dict(),
            "threads": torch.get_num_threads(),
            "device": str(trainer.resolve_device(self.train_config.device)),
        }
        return result

    def description(self) -> dict[str, Any]:
        """What training-event hooks are told a run is: plain data (zoo/core/hookspecs.py)."""
        return {
            "architecture": self.name,
            "dataset": self.dataset,
            "task": self.task,
            "settings": {
                "model": cfg.to_dict(self.config),
                "data": cfg.to_dict(self.data_config),
                "train": cfg.to_dict(self.train_config),
            },
        }

    def evaluate(
        self,
        data: str | os.PathLike[str] | None = None,
        *,
        dataset: str | None = None,
        split: str = "test",
        batch_size: int | None = None,
        device: str = "cpu",
        registry: Registry | None = None,
        processes: distributed.Processes | None = None,
        **settings: Any,
    ) -> dict[str, Any]:
        """Metrics on a split. Without `data`, the model's own data (attached, or reloaded as
        configured for training, with the same held-out split); with it, the dataset reads
        that path with the model's saved vocabularies and normalisation, and a file other
        than the training file is evaluated whole. `dataset` names another dataset of the
        same task. `settings` are data settings, or model settings that keep the tensors
        (`impl="cells"`). `processes`: inside torchrun, with every process calling, each
        scores its share of the split and all get one process's metrics (`trainer.evaluate`)."""
        reg = registry or get_registry()
        limit, settings = self.input_limit(settings)
        name = dataset or self.dataset
        names = cfg.field_names(reg.dataset(name).spec.config) if name in reg.datasets else []
        own = cfg.field_names(self.architecture.config)
        changes, data_settings = split_trained(own, settings, "data", names)
        model = reconfigure(self, changes, registry=reg)
        loaded = self.evaluation_data(data, dataset=dataset, registry=reg, **data_settings)
        if not loaded.has(split):
            available = [s for s in loaded.splits if loaded.has(s)]
            raise UsageError(
                f"split {split!r}: the data has no such examples; it has: {', '.join(available)}"
            )
        _check_lengths(loaded, split, limit, str(data or self.dataset))
        dev = trainer.resolve_device(device)
        model.module.to(dev)
        size = batch_size or model.train_config.batch_size
        return trainer.evaluate(model.checked, loaded, split, size, dev, processes)

    def evaluation_data(
        self,
        data: str | os.PathLike[str] | None = None,
        *,
        dataset: str | None = None,
        registry: Registry | None = None,
        **data_settings: Any,
    ) -> Data:
        """The data `evaluate` scores: the attached data, else the model's own dataset as
        configured for training (the same held-out split), else `data` (a path) read as
        `dataset` with the model's saved state; `data_settings` change data settings."""
        if self.data is not None and data is None and dataset is None and not data_settings:
            return self.data
        reg = registry or get_registry()
        trained_on = (self.dataset, self.data_config)
        return data_for_model(reg, self.name, trained_on, self.state, data, dataset, data_settings)

    def predict(
        self, inputs: str | list[str], *, registry: Registry | None = None, **settings: Any
    ) -> list[dict[str, Any]]:
        """Predictions for raw inputs (sentences, sequences, numbers as text), one dict each
        with at least `input`, `output` and `text` (a one-line rendering). `settings` are the
        architecture's predict options (`beam_size=5`), or model settings that keep the
        tensors (`impl="cells"`)."""
        items = [inputs] if isinstance(inputs, str) else list(inputs)
        limit, settings = self.input_limit(settings)
        limit.check_count(len(items), "the inputs")
        limit.check_all(items, lambda i: f"input {i + 1}")
        model, options = self.predicting(settings, registry)
        with torch.no_grad(), limits.active(limit):
            return model.checked.predict(items, options)

    def predict_file(
        self,
        path: str | os.PathLike[str] | TextFile,
        output: str | os.PathLike[str] | None = None,
        *,
        registry: Registry | None = None,
        **settings: Any,
    ) -> tuple[str, list[dict[str, Any]]]:
        """Predict from a file: by default one input a line, one output line each, blank
        lines kept so the output lines up with the input; architectures that read a
        structured format (CoNLL-U, CSV) fill it in instead. Returns (output text,
        predictions) and, with `output`, writes the text there atomically."""
        if output is not None:
            check_writable(
                output,
                option="output",
                inputs={"input": path.path if isinstance(path, TextFile) else path},
            )
        limit, settings = self.input_limit(settings)
        model, options = self.predicting(settings, registry)
        file = path if isinstance(path, TextFile) else read_text(path)
        lines = file.lines()  # in any format a line is at most one input
        limit.check_all(lines, lambda i: f"{file.path}:{i + 1}")
        with torch.no_grad(), limits.active(limit):
            text, predictions = model.checked.predict_file(file, options)
        if output is not None:
            atomic_write_text(output, text)
        return text, predictions

    def input_limit(self, settings: dict[str, Any]) -> tuple[limits.InputLimit, dict[str, Any]]:
        """The limit on one input (the network's, or `max_input_length` in `settings`) and
        the other settings."""
        rest = dict(settings)
        given = rest.pop(limits.OPTION, None)
        maximum = self.module.max_input_length if given is None else limits.parse_override(given)
        count = rest.pop(limits.REQUEST_OPTION, None)
        inputs = limits.MAX_INPUTS if count is None else limits.parse_override(count, "max_inputs")
        return limits.InputLimit(self.module.input_unit, maximum, inputs), rest

    def predicting(
        self, settings: dict[str, Any], registry: Registry | None = None
    ) -> tuple[Model, Any]:
        """This model (under any model settings in `settings`) in eval mode, and its predict
        options (the rest of `settings`)."""
        spec = self.architecture
        names = cfg.field_names(spec.predict_config) if spec.predict_config else []
        own = cfg.field_names(spec.config)
        changes, options = split_trained(own, settings, "predict", names)
        model = reconfigure(self, changes, registry=registry)
        model.module.eval()
        return model, predict_options(spec, options)

    def save(self, path: str | os.PathLike[str]) -> None:
        save(self, path)


def _check_lengths(data: Data, split: str, limit: limits.InputLimit, source: str) -> None:
    """An example over the input limit is refused before any batch is made (where the data
    says how long its examples are): one megabyte pair would otherwise ask for gigabytes."""
    if data.length is None or limit.maximum is None:
        return
    for i, example in enumerate(data.splits.get(split, ())):
        n = data.length(example)
        if n > limit.maximum:
            where = f"{source}: split {split!r}, example {i + 1}"
            raise UsageError(limits.over_limit_message(where, n, limit.unit, limit.maximum))


def create(
    name: str,
    dataset: str | None = None,
    data: str | os.PathLike[str] | None = None,
    *,
    dev: str | os.PathLike[str] | None = None,
    test: str | os.PathLike[str] | None = None,
    registry: Registry | None = None,
    **settings: Any,
) -> Model:
    """Build architecture `name` for `dataset` (default: the architecture's own), loading the
    data (from `data`, a path, when the dataset reads files; `dev` and `test` for datasets that
    take separate files) to size vocabularies and layers.

    `settings` may be any model, data or training setting (`hidden_size=128`, `epochs=5`).
    """
    reg = registry or get_registry()
    entry = reg.architecture(name)
    spec = entry.spec
    dataset = dataset or spec.default_dataset
    ds_spec = reg.dataset(dataset).spec
    reg.check_compatible(name, dataset)
    paths = {"--data": data, "--dev": dev, "--test": test}
    resolved = resolve(spec, ds_spec, with_paths(settings, paths, ds_spec))
    trainer.resolve_device(resolved.train.device)  # no GPU: say so before loading any data
    factory = reg.network_class(name, ds_spec.task)
    loaded = load_data(reg, dataset, resolved.data, None)
    if not loaded.has("train"):
        raise DataError("the training split is empty", path=getattr(resolved.data, "path", None))
    what = f"architecture {name!r} ({entry.plugin.label})"
    torch.manual_seed(resolved.train.seed)
    network = guard.build(what, factory, resolved.model, loaded.state)
    guard.Checked(network, what).initialise(loaded)  # e.g. pretrained vectors: never at load
    return Model(
        architecture=spec,
        dataset=dataset,
        task=ds_spec.task,
        config=resolved.model,
        data_config=resolved.data,
        train_config=resolved.train,
        state=loaded.state,
        module=network,
        plugin=entry.plugin,
        data=loaded,
    )


def model_fields(model: Model) -> dict[str, Any]:
    """What the file's metadata says about a model (see zoo.modelfile)."""
    data_config = model.data_config
    if not isinstance(data_config, dict):
        data_config = cfg.to_dict(data_config)
    return {
        "zoo_version": __version__,
        "architecture": model.name,
        "task": model.task,
        "dataset": model.dataset,
        "plugin": {
            "name": model.plugin.name,
            "distribution": model.plugin.distribution,
            "version": model.plugin.version,
        },
        "config": cfg.to_dict(model.config),
        "data_config": data_config,
        "train_config": cfg.to_dict(model.train_config),
        "data_state": model.state,
        "metrics": model.metrics,
        "parameters": model.num_parameters(),
    }


def cpu_tensors(state_dict: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Detached CPU copies; copies because tied weights share storage, which safetensors
    refuses to write twice."""
    return {
        k: v.detach().to("cpu").contiguous().clone()
        for k, v in state_dict.items()
        if isinstance(v, torch.Tensor)
    }


def save(model: Model, path: str | os.PathLike[str]) -> None:
    """Write the model to `path` atomically: the old file stays whole until the new one is."""
    check_writable(path)
    metadata = modelfile.encode_metadata(model_fields(model))
    atomic_write(path, serialize(cpu_tensors(model.module.state_dict()), metadata))


def serialize(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """safetensors bytes whose metadata carries a checksum of the whole file."""
    unsigned = safetensors.torch.save(tensors, metadata=metadata)
    sealed = {**metadata, modelfile.CHECKSUM_KEY: modelfile.checksum(unsigned)}
    return safetensors.torch.save(tensors, metadata=sealed)


def load(
    path: str | os.PathLike[str],
    *,
    registry: Registry | None = None,
    device: str | torch.device = "cpu",
    config: dict[str, Any] | None = None,
) -> Model:
    """Rebuild a model from its file; the architecture comes from installed plugins only.

    `config` changes model settings that leave the tensors as they are, such as
    `{"impl": "cells"}` to run a model trained with torch's fused layers through zoo.cells;
    a change that alters the tensors is refused like a mismatched file.
    """
    fields, index = modelfile.read_verified(path)
    model = from_fields(fields, index, str(path), registry=registry, config=config)
    model.module.load_state_dict(read_tensors(path), strict=True)
    model.module.to(device).eval()
    return model


def read_tensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    try:
        return safetensors.torch.load_file(os.fspath(path), device="cpu")
    except (safetensors.SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"{path}: cannot read tensors: {e}") from None


def from_fields(
    fields: dict[str, Any],
    index: dict[str, dict[str, Any]],
    name: str,
    *,
    registry: Registry | None = None,
    config: dict[str, Any] | None = None,
) -> Model:
    """A model with freshly built weights of the right shapes, from a file's decoded metadata;
    `index` (tensor name -> dtype, shape) must match the network before anything is allocated."""
    reg = registry or get_registry()
    entry, factory = installed(reg, fields, name)
    model_config, data_config, train_config = file_configs(reg, entry.spec, fields, name)
    if config is not None and not isinstance(config, dict):
        raise UsageError(f"load(config=...): expected a dict of settings, got {config!r}")
    if config:
        model_config = cfg.replace(model_config, config)
    state = fields["data_state"]
    what = f"architecture {entry.spec.name!r} ({entry.plugin.label})"
    try:
        module = build_checked(factory, model_config, state, index, what=what, where=name)
    except TensorMismatch as e:
        if config:
            raise reshaping(config, e) from None
        raise
    return Model(
        architecture=entry.spec,
        dataset=fields["dataset"],
        task=fields["task"],
        config=model_config,
        data_config=data_config,
        train_config=train_config,
        state=state,
        module=module,
        plugin=entry.plugin,
        metrics=fields["metrics"],
    )


def reconfigure(
    model: Model, changes: dict[str, Any], *, registry: Registry | None = None
) -> Model:
    """The same trained weights under changed model settings (`{"impl": "cells"}`); settings
    that would change the tensors are refused. No changes: the model itself."""
    if not changes:
        return model
    config = cfg.replace(model.config, changes)
    factory = (registry or get_registry()).network_class(model.name, model.task)
    weights = model.module.state_dict()
    index = {k: {"shape": list(v.shape)} for k, v in weights.items()}
    try:
        module = build_checked(
            factory, config, model.state, index, what=model.label, where=model.name
        )
    except TensorMismatch as e:
        raise reshaping(changes, e) from None
    module.load_state_dict(weights)
    module.to(model.module.device).train(model.module.training)
    return dataclasses.replace(model, config=config, module=module)
