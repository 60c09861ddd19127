"""What a plugin registers: an `Architecture` (a network and its settings) or a `Dataset` (a
loader and its settings). Specs are plain data; the code behind them (`implementation`,
`loader`) is named by a dotted path and imported only when first used (zoo/core/registry.py).
docs/plugins.md, section 4, describes every field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Architecture:
    """A model architecture a plugin provides.

    `implementation` names its network, a `zoo.Network` subclass (an `nn.Module` with `loss`,
    `evaluate` and `predict` methods), as "module:Class"; zoo builds it as
    `Class(config, state)`. Any callable returning a Network will do (a function choosing
    between classes). An architecture whose tasks need different networks gives a mapping
    `{task: "module:Class"}`. See docs/plugins.md.
    """

    name: str
    description: str
    tasks: tuple[str, ...]
    config: type
    default_dataset: str
    implementation: Any
    # Training settings this architecture prefers (keys of zoo.settings.TrainConfig).
    train_defaults: Mapping[str, Any] = field(default_factory=dict)
    # Settings (model, data or training keys) for a given dataset name: its best-known recipe.
    dataset_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # The validation metric that picks the best epoch and drives early stopping.
    monitor: tuple[str, str] = ("loss", "min")
    # The metrics `zoo run` prints, `zoo compare` and `zoo card` tabulate and `zoo sweep`
    # reports, in this order, any key `evaluate` returns (`f1/anomaly` included); the monitor
    # is always among them. Empty: the monitor, then every other plain number of `evaluate`.
    headline: tuple[str, ...] = ()
    # Options `zoo predict --set` accepts (a config dataclass), or None.
    predict_config: type | None = None

    def headline_metrics(self) -> tuple[str, ...]:
        """`headline` with the monitor first when it leaves it out; () when not declared."""
        if not self.headline:
            return ()
        monitor = self.monitor[0]
        return self.headline if monitor in self.headline else (monitor, *self.headline)


@dataclass(frozen=True)
class Dataset:
    """A dataset a plugin provides: what task it serves and how to load it.

    `loader` names a function `load(config, state) -> zoo.data.Data`; `state` is None when
    training (build vocabularies or normalisation from the training part) and the saved state
    when evaluating a trained model (reuse it). A config field named `path` receives `--data`.
    """

    name: str
    description: str
    task: str
    config: type
    loader: Any
    # Training settings suited to this data's size (keys of zoo.settings.TrainConfig).
    train_defaults: Mapping[str, Any] = field(default_factory=dict)
