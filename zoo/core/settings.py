"""Training settings, and how every setting of a run is resolved.

A run has three configs: the architecture's (model), the dataset's (data) and `TrainConfig`.
Users set any of them with one flat namespace (`--set hidden_size=128`, or `model.hidden_size`
where a name is ambiguous). Defaults come in layers, later ones winning:

1. the config classes' own defaults;
2. `Architecture.train_defaults` (what the model likes: learning rate, clipping);
3. `Dataset.train_defaults` (what the data's size needs: epochs, batch size);
4. `Architecture.dataset_defaults[dataset]` (the recipe known to work for that pairing);
5. the user's settings.

No torch here: `zoo info` shows resolved settings without importing it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from zoo.core import config as cfg
from zoo.core.config import param, problem, suggest
from zoo.core.errors import SettingError, UsageError


@dataclass
class TrainConfig:
    """How to train: optimisation, schedule, stopping, seed, device and threads."""

    epochs: int = param(10, "passes over the training data", min=0, max=1_000_000)
    steps: int = param(
        0, "train for exactly this many optimizer steps, overriding epochs (0: use epochs)", min=0
    )
    batch_size: int = param(32, "examples per optimizer step", min=1, max=1_000_000)
    lr: float = param(1e-3, "learning rate", min=0.0)
    optimizer: Literal["adam", "adamw", "sgd"] = param("adam", "optimizer")
    weight_decay: float = param(0.0, "weight decay (L2 for adam/sgd, decoupled for adamw)", min=0.0)
    adam_beta2: float = param(
        0.999,
        "adam/adamw: decay of the squared-gradient average (0.9 lets the step size follow "
        "shrinking gradients sooner)",
        min=0.0,
        max=0.9999,
    )
    grad_clip: float = param(0.0, "clip the gradient norm to this value (0: off)", min=0.0)
    lr_schedule: Literal["constant", "linear", "cosine"] = param(
        "constant", "learning-rate schedule over the whole run, after warm-up"
    )
    warmup_steps: int = param(0, "linear learning-rate warm-up steps", min=0)
    decay_fraction: float = param(
        1.0,
        "linear/cosine schedules: decay over this last share of the run (after warm-up), "
        "the rate held constant before it (1: decay all the way)",
        min=0.0,
        max=1.0,
    )
    ema_decay: float = param(
        0.0,
        "keep an exponential moving average of the weights with this decay (e.g. 0.999; 0: off); "
        "validation, the final evaluation and the saved model use the average",
        min=0.0,
        max=1.0,
    )
    eval_every: int = param(0, "validate every N steps (0: after each epoch)", min=0)
    patience: int = param(
        0, "stop after this many validations without improvement (0: never stop early)", min=0
    )
    seed: int = param(0, "seed for initialisation, shuffling and dropout", min=0, max=2**63 - 1)
    device: str = param("auto", "cpu, cuda, cuda:N, or auto (cuda when available)")
    threads: int = param(
        1,
        "torch intra-op threads on CPU (0: torch's default); small RNNs are often fastest with 1",
        min=0,
        max=1024,
    )
    precision: Literal["fp32", "bf16"] = param(
        "fp32",
        "training arithmetic: bf16 runs the forward pass under torch.autocast (matrix products "
        "and recurrent layers in bfloat16, weights and optimizer in float32; recurrent layers "
        "stay float32 on CPUs without bf16 instructions); validation, the saved model and "
        "predictions stay float32",
    )

    def check(self) -> None:
        if self.epochs == 0 and self.steps == 0:
            raise ValueError("epochs and steps are both 0: nothing to train")
        if not self.ema_decay < 1.0:
            raise ValueError(
                f"ema_decay={self.ema_decay!r}: expected at least 0 and below 1 (e.g. 0.999; 0: off)"
            )


KINDS = ("model", "data", "train")


@dataclass
class Settings:
    """The three resolved configs of a run."""

    model: Any
    data: Any
    train: TrainConfig


def route(
    key: str, tables: Mapping[str, list[str]], *, where: str | None = None
) -> tuple[str, str]:
    """Which config (model, data or train) a flat or prefixed key belongs to."""
    prefix, dot, rest = key.partition(".")
    if dot and prefix in tables:
        if rest not in tables[prefix]:
            raise problem(
                where,
                f"{prefix} has no setting {cfg.shown(rest)}{suggest(rest, tables[prefix])}; "
                f"valid: {', '.join(tables[prefix])}",
            )
        return prefix, rest
    owners = [kind for kind, names in tables.items() if key in names]
    if len(owners) == 1:
        return owners[0], key
    if len(owners) > 1:
        raise problem(
            where,
            f"{cfg.shown(key)} is a setting of both "
            + " and ".join(owners)
            + "; write "
            + " or ".join(f"{o}.{key}" for o in owners),
        )
    every = [n for names in tables.values() for n in names]
    raise problem(
        where,
        f"unknown setting {cfg.shown(key)}{suggest(key, every)}; "
        + "; ".join(f"{kind}: {', '.join(names)}" for kind, names in tables.items()),
    )


def resolve(
    architecture: Any,
    dataset: Any,
    user: Mapping[str, Any] | None = None,
    *,
    where: str | None = None,
) -> Settings:
    """The model, data and training configs for `architecture` on `dataset` (see module doc)."""
    classes = {"model": architecture.config, "data": dataset.config, "train": TrainConfig}
    tables = {kind: cfg.field_names(c) for kind, c in classes.items()}
    values: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
    layers = [
        (
            f"architecture {architecture.name} train_defaults",
            architecture.train_defaults,
            ("train",),
        ),
        (f"dataset {dataset.name} train_defaults", dataset.train_defaults, ("train",)),
        (
            f"architecture {architecture.name} dataset_defaults[{dataset.name}]",
            architecture.dataset_defaults.get(dataset.name, {}),
            KINDS,
        ),
        (where, user or {}, KINDS),
    ]
    for label, layer, allowed in layers:
        for key, value in layer.items():
            kind, name = route(key, {k: tables[k] for k in allowed}, where=label)
            values[kind][name] = value
    return Settings(
        model=cfg.build(classes["model"], values["model"], where=where),
        data=cfg.build(classes["data"], values["data"], where=where),
        train=cfg.build(TrainConfig, values["train"], where=where),
    )


# Command-line options that fill a dataset's path fields, when the dataset has them.
PATH_OPTIONS = {"--data": "path", "--dev": "dev_path", "--test": "test_path"}


def with_paths(settings: dict[str, Any], paths: dict[str, Any], spec: Any) -> dict[str, Any]:
    """Route `--data/--dev/--test` to the dataset's `path/dev_path/test_path` fields."""
    names = cfg.field_names(spec.config)
    out = dict(settings)
    for option, value in paths.items():
        if value is None:
            continue
        field_name = PATH_OPTIONS[option]
        if field_name not in names:
            what = (
                "is built in and reads no files" if field_name == "path" else f"takes no {option}"
            )
            raise UsageError(
                f"{option}: dataset {spec.name!r} {what}; `zoo info {spec.name}` lists its settings"
            )
        out[f"data.{field_name}"] = os.fspath(value)
    return out


def default_out(architecture: str, dataset: str) -> str:
    """The model file `zoo run` writes when not told: `NAME-DATASET.safetensors`."""
    return f"{architecture}-{dataset}.safetensors"


def split_trained(
    model_names: list[str], settings: Mapping[str, Any], kind: str, names: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model settings, the rest) of `settings` given to a trained model whose config has
    `model_names`. The rest are of `kind` (data settings or predict options, named `names`)
    and take unprefixed names that the model's config shares; `model.KEY` and `KIND.KEY` say
    which is meant."""
    changes: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in settings.items():
        prefix, dot, bare = key.partition(".")
        if dot and prefix == "model":
            changes[bare] = value
        elif dot and prefix == kind:
            rest[bare] = value
        elif key in model_names and key not in names:
            changes[key] = value
        else:
            rest[key] = value
    return changes, rest


def predict_options(architecture: Any, options: Mapping[str, Any]) -> Any:
    """An instance of the architecture's `predict_config` from `options` (None without one)."""
    if architecture.predict_config is not None:
        return cfg.build(architecture.predict_config, options)
    if options:
        raise SettingError(f"{', '.join(options)}: {architecture.name} takes no predict options")
    return None
