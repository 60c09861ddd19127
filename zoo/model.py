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
from zoo.errors import ModelFileError, PluginError, UsageError, ZooError
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


def save(model: Model, path: str | os.PathLike[str]) -> None:
    """Write the model to `path` atomically: the old file stays whole until the new one is."""
    check_writable(path)
    data_config = (
        cfg.to_dict(model.data_config)
        if not isinstance(model.data_config, dict)
        else model.data_config
    )
    fields = {
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
    # clone: tied weights share storage, which safetensors refuses to write twice
    tensors = {
        k: v.detach().to("cpu").contiguous().clone()
        for k, v in model.module.state_dict().items()
        if isinstance(v, torch.Tensor)
    }
    payload = safetensors.torch.save(tensors, metadata=modelfile.encode_metadata(fields))
    atomic_write(path, payload)


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
    name = str(path)
    metadata, index = modelfile.read_header(path)
    fields = modelfile.decode_metadata(path, metadata)
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
    except UsageError as e:
        raise ModelFileError(str(e)) from None
    if config:
        model_config = cfg.replace(model_config, config, where="load config")
    data_config: Any = fields["data_config"]
    if fields["dataset"] in reg.datasets:
        try:
            data_config = cfg.build(
                reg.dataset(fields["dataset"]).spec.config,
                data_config,
                where=f"{name}: data_config",
            )
        except UsageError as e:
            raise ModelFileError(str(e)) from None
    state = fields["data_state"]
    module = build_checked(impl, model_config, state, task, index, where=name)
    try:
        tensors = safetensors.torch.load_file(os.fspath(path), device="cpu")
    except (safetensors.SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"{name}: cannot read tensors: {e}") from None
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise ModelFileError(f"{name}: tensors do not fit the network: {e}") from None
    module.to(device).eval()
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
    except ZooError:
        raise
    except Exception as e:  # a malformed data_state reaches plugin code as KeyError, TypeError...
        raise ModelFileError(
            f"{where}: cannot rebuild the network from the file's config and data_state: "
            f"{type(e).__name__}: {e}"
        ) from None
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
    except ZooError:
        raise
    except Exception as e:
        raise ModelFileError(
            f"{where}: cannot rebuild the network: {type(e).__name__}: {e}"
        ) from None
