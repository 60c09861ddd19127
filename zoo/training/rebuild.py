"""Rebuilding a plugin's network from what a file records, safely.

A model file (or checkpoint) names an architecture, a task, configs and a data state; the
registry alone decides what code that means (nothing a file names is ever imported). The
network is first built on torch's meta device, which allocates nothing, and its tensor names
and shapes are compared with the file's, so a file whose config does not match its tensors
(or asks for a 10^9-unit layer) is refused before any memory is spent on it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from zoo.core import config as cfg
from zoo.core.errors import ModelFileError, PluginError, SettingError, UsageError
from zoo.core.registry import Registry
from zoo.core.settings import TrainConfig
from zoo.core.specs import Architecture
from zoo.toolkit.network import Network
from zoo.training import guard


def installed(reg: Registry, fields: dict[str, Any], name: str) -> tuple[Any, Any]:
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


def file_configs(
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
