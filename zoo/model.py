"""A zoo model: the torch module plus everything needed to rebuild, train and use it.

`save` writes it as one self-describing `.safetensors` file (see `zoo.modelfile`); `load`
rebuilds it from that file alone, resolving the architecture through the registry. Loading
first builds the network on torch's meta device, which allocates nothing, and compares its
tensor names and shapes with the file, so a file whose config does not match its tensors is
refused before any memory is spent on it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import safetensors
import safetensors.torch
import torch

from zoo import __version__, guard, modelfile
from zoo import config as cfg
from zoo.data import Data
from zoo.errors import ModelFileError, PluginError, SettingError, UsageError
from zoo.fileio import atomic_write, check_writable
from zoo.network import Network
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

    def predict_file(
        self,
        path: str | os.PathLike[str],
        output: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> tuple[str, list[dict[str, Any]]]:
        from zoo.api import predict_file

        return predict_file(self, path, output, **options)

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
    entry, factory = _installed(reg, fields, name)
    model_config, data_config, train_config = _file_configs(reg, entry.spec, fields, name)
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


def _installed(reg: Registry, fields: dict[str, Any], name: str) -> tuple[Any, Any]:
    """(registry entry, network factory) of the architecture and task a file names."""
    arch_name, task = fields["architecture"], fields["task"]
    try:
        entry = reg.architecture(arch_name)
        if task not in entry.spec.tasks:
            raise ModelFileError(
                f"{name}: task {task!r} is not one of {arch_name}'s tasks "
                f"({', '.join(entry.spec.tasks)})"
            )
        return entry, reg.network_class(arch_name, task)
    except UsageError:
        origin = fields["plugin"]
        raise ModelFileError(
            f"{name}: needs architecture {arch_name!r} from "
            f"{origin.get('distribution', '?')} {origin.get('version', '?')}, which is not "
            "installed (`zoo list` shows what is)"
        ) from None
    except PluginError as e:
        raise ModelFileError(f"{name}: {e}") from None


def _file_configs(
    reg: Registry, spec: Architecture, fields: dict[str, Any], name: str
) -> tuple[Any, Any, TrainConfig]:
    """The model, data and training configs a file records, checked like settings."""
    try:
        model_config = cfg.build(spec.config, fields["config"], where=f"{name}: config")
        train_config = cfg.build(TrainConfig, fields["train_config"], where=f"{name}: train_config")
        data_config: Any = fields["data_config"]
        if fields["dataset"] in reg.datasets:
            data_spec = reg.dataset(fields["dataset"]).spec
            data_config = cfg.build(data_spec.config, data_config, where=f"{name}: data_config")
    except UsageError as e:
        raise ModelFileError(str(e)) from None
    return model_config, data_config, train_config


@contextlib.contextmanager
def shapes_only() -> Iterator[None]:
    """Build on torch's meta device: shapes and names, no memory. `Tensor.normal_` (which
    nn.Embedding's initialisation calls) is skipped on meta tensors, where it would import
    torch._dynamo: seconds of every `zoo predict` and `zoo eval` for nothing."""
    normal = torch.Tensor.normal_

    def normal_on_real_tensors(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self if self.is_meta else normal(self, *args, **kwargs)

    torch.Tensor.normal_ = normal_on_real_tensors  # type: ignore[method-assign]
    try:
        with torch.device("meta"):
            yield
    finally:
        torch.Tensor.normal_ = normal  # type: ignore[method-assign]


class TensorMismatch(ModelFileError):
    """A network whose tensors' names or shapes differ from a file's."""


def reshaping(changes: dict[str, Any], e: Exception) -> SettingError:
    settings = ", ".join(f"{k}={v}" for k, v in changes.items())
    detail = str(e).partition("tensors do not match the config: ")[2] or str(e)
    return SettingError(
        f"{settings}: would change the trained network's tensors ({detail}); a trained "
        "model takes only settings that keep them, such as impl"
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


def build_checked(
    factory: Any,
    config: Any,
    state: dict[str, Any],
    index: dict[str, dict[str, Any]],
    *,
    what: str,
    where: str,
) -> Network:
    """Build the network, but only after a meta-device build matched the file's tensors."""
    try:
        with shapes_only():
            shape_only = guard.build(what, factory, config, state)
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
        raise TensorMismatch(f"{where}: tensors do not match the config: " + "; ".join(parts))
    try:
        return guard.build(what, factory, config, state)
    except PluginError as e:
        raise ModelFileError(f"{where}: cannot rebuild the network: {e}") from e
