"""The hooks a zoo plugin can implement.

A plugin is any importable module (or object) named by an entry point in the `zoo` group that
implements some of these functions, decorated with `zoo.hookimpl`. The built-in plugins use
exactly this mechanism. Hooks are called once per plugin, so each registration is credited to
the plugin (and its distribution) that made it, and a plugin that raises does not stop the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from zoo.core.specs import Architecture, Dataset

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def register_architectures(register: Callable[[Architecture], None]) -> None:
    """Call `register(Architecture(...))` once for each model architecture the plugin provides.

    Keep torch out of the module that implements this hook: `zoo list` imports every plugin and
    must stay fast. Put the network in the module named by `Architecture.implementation`.
    """


@hookspec
def register_datasets(register: Callable[[Dataset], None]) -> None:
    """Call `register(Dataset(...))` once for each dataset the plugin provides.

    The loader is named by `Dataset.loader` ("package.module:function") and imported only when
    the dataset is used.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add extra click commands to the `zoo` command line, e.g. `cli.add_command(my_command)`."""


# ---------------------------------------------------------------------- training events
# Loggers (TensorBoard, MLflow, W&B, ...) are plugins that implement these. They are called in
# the process that writes (rank 0 of several), with plain data only: `run` is a dict with
# `architecture`, `dataset`, `task`, `settings` ({"model", "data", "train"}), `total_steps`,
# `epochs` and `start_step` (past 0 when resuming). A hook that raises is reported once, on
# one `warning:` line, and that plugin hears nothing more of the run; training goes on.
# An implementation may take any subset of a hook's arguments.


@hookspec
def training_started(run: dict[str, Any]) -> None:
    """Training of a run begins, or resumes from a checkpoint."""


@hookspec
def training_epoch_ended(
    run: dict[str, Any], epoch: int, step: int, train_loss: float, lr: float, seconds: float
) -> None:
    """An epoch ended: its mean training loss, the learning rate and the seconds so far."""


@hookspec
def training_validated(
    run: dict[str, Any], step: int, scores: dict[str, float], improved: bool
) -> None:
    """The validation split was scored at `step` (overall numbers only: `loss`, `accuracy`,
    ...); `improved` says whether it is the best so far (the weights the run keeps)."""


@hookspec
def training_ended(run: dict[str, Any], status: str, result: dict[str, Any]) -> None:
    """Training ended: `status` is finished, interrupted (Ctrl-C or SIGTERM), diverged or
    failed; `result` is what `zoo run --json` reports under `training`, history included."""
