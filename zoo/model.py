"""A zoo model: the torch module plus everything needed to rebuild, train and use it.

`save` writes it as one self-describing `.safetensors` file (see `zoo.modelfile`); `load`
rebuilds it from that file alone, resolving the architecture through the registry. Loading
first builds the network on torch's meta device, which allocates nothing, and compares its
tensor names and shapes with the file, so a file whose config does not match its tensors is
refused before any memory is spent on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import safetensors
import safetensors.torch
import torch

from zoo import __version__, modelfile
from zoo import config as cfg
from zoo.data import Data
from zoo.errors import ModelFileError, PluginError, UsageError
from zoo.fileio import atomic_write, check_writable
from zoo.registry import Architecture, Plugin, Registry, get_registry
from zoo.settings import TrainConfig


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
    module: torch.nn.Module
    plugin: Plugin
    impl: Any
    metrics: dict[str, Any] = field(default_factory=dict)
    data: Data | None = None

    @property
    def name(self) -> str:
        return self.architecture.name

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    # The verbs, for notebooks: model.fit(); model.evaluate(); model.predict([...]); model.save(p)
    def fit(self, progress: bool = False, **settings: Any) -> Any:
        from zoo.api import train

        return train(self, progress=progress, **settings)

    def evaluate(self, data: str | None = None, **kwargs: Any) -> dict[str, float]:
        from zoo.api import evaluate

        return evaluate(self, data, **kwargs)

    def predict(self, inputs: str | list[str], **options: Any) -> list[dict[str, Any]]:
        from zoo.api import predict

        return predict(self, inputs, **options)

    def save(self, path: str | os.PathLike[str]) -> None:
        save(self, path)

    def __repr__(self) -> str:
        return (
            f"<zoo.Model {self.name} on {self.dataset} ({self.task}), "
            f"{self.num_parameters():,} parameters>"
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
    arch_name = fields["architecture"]
    try:
        entry = reg.architecture(arch_name)
        impl = reg.implementation(arch_name)
    except UsageError:
        origin = fields["plugin"]
        raise ModelFileError(
            f"{name}: needs architecture {arch_name!r} from "
            f"{origin.get('distribution', '?')} {origin.get('version', '?')}, which is not "
            "installed (`zoo list` shows what is)"
        ) from None
    except PluginError as e:
        raise ModelFileError(f"{name}: {e}") from None
    spec: Architecture = entry.spec
    task = fields["task"]
    if task not in spec.tasks:
        raise ModelFileError(
            f"{name}: task {task!r} is not one of {arch_name}'s tasks ({', '.join(spec.tasks)})"
        )
    try:
        model_config = cfg.build(spec.config, fields["config"], where=f"{name}: config")
        train_config = cfg.build(TrainConfig, fields["train_config"], where=f"{name}: train_config")
        data_config: Any = fields["data_config"]
        if fields["dataset"] in reg.datasets:
            data_spec = reg.dataset(fields["dataset"]).spec
            data_config = cfg.build(data_spec.config, data_config, where=f"{name}: data_config")
    except UsageError as e:
        raise ModelFileError(str(e)) from None
    if config is not None and not isinstance(config, dict):
        raise UsageError(f"load(config=...): expected a dict of settings, got {config!r}")
    if config:
        model_config = cfg.replace(model_config, config, where="load config")
    state = fields["data_state"]
    module = build_checked(impl, model_config, state, task, index, where=name)
    return Model(
        architecture=spec,
        dataset=fields["dataset"],
        task=task,
        config=model_config,
        data_config=data_config,
        train_config=train_config,
        state=state,
        module=module,
        plugin=entry.plugin,
        impl=impl,
        metrics=fields["metrics"],
    )


def build_checked(
    impl: Any,
    config: Any,
    state: dict[str, Any],
    task: str,
    index: dict[str, dict[str, Any]],
    *,
    where: str,
) -> torch.nn.Module:
    """Build the network, but only after a meta-device build matched the file's tensors."""
    try:
        with torch.device("meta"):
            shape_only = impl.build(config, state, task)
        expected = {k: list(v.shape) for k, v in shape_only.state_dict().items()}
    except (PluginError, RuntimeError, ValueError, TypeError, KeyError) as e:
        # a malformed data_state reaches plugin code as a KeyError, TypeError, ...
        raise ModelFileError(
            f"{where}: cannot rebuild the network from the file's config and data_state: {e}"
        ) from e
    found = {k: v["shape"] for k, v in index.items()}
    if expected != found:
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing[:5]))
        if extra:
            parts.append("unexpected " + ", ".join(extra[:5]))
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} with the wrong shape (e.g. {k}: file {found[k]}, config {expected[k]})"
            )
        raise ModelFileError(f"{where}: tensors do not match the config: " + "; ".join(parts))
    try:
        return impl.build(config, state, task)
    except PluginError as e:
        raise ModelFileError(f"{where}: cannot rebuild the network: {e}") from e
