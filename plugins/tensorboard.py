"""A TensorBoard logger, as a plugin: training curves and validation scores of every `zoo run`
written as TensorBoard event files, through the training-event hooks (zoo/core/hookspecs.py).

Off unless `ZOO_TENSORBOARD_DIR` names a folder; then each run writes to its own subfolder,
`ARCHITECTURE-DATASET-YYYYmmdd-HHMMSS-PID`, and `tensorboard --logdir DIR` shows them. Needs
the `tensorboard` package: `pip install 'rnn-zoo[tensorboard]'`. Nothing is imported until a
run starts with the folder set, so `zoo list` stays fast.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from zoo import hookimpl

# Each run's writer, by the identity of the run's description (the same dict in every event).
_writers: dict[int, Any] = {}


def _open_writer(run: dict[str, Any], folder: str) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise RuntimeError(
            "ZOO_TENSORBOARD_DIR is set but tensorboard is not installed: "
            "pip install 'rnn-zoo[tensorboard]'"
        ) from None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{run['architecture']}-{run['dataset']}-{stamp}-{os.getpid()}"
    return SummaryWriter(log_dir=str(Path(folder) / name))


@hookimpl
def training_started(run: dict[str, Any]) -> None:
    folder = os.environ.get("ZOO_TENSORBOARD_DIR")
    if not folder:
        return
    writer = _open_writer(run, folder)
    _writers[id(run)] = writer
    writer.add_text("settings", "```\n" + json.dumps(run["settings"], indent=2) + "\n```")


@hookimpl
def training_epoch_ended(
    run: dict[str, Any], epoch: int, step: int, train_loss: float, lr: float
) -> None:
    writer = _writers.get(id(run))
    if writer is not None:
        writer.add_scalar("train/loss", train_loss, step)
        writer.add_scalar("train/lr", lr, step)
        writer.add_scalar("train/epoch", epoch, step)


@hookimpl
def training_validated(run: dict[str, Any], step: int, scores: dict[str, float]) -> None:
    writer = _writers.get(id(run))
    if writer is not None:
        for name, value in scores.items():
            writer.add_scalar(f"valid/{name}", value, step)


@hookimpl
def training_ended(run: dict[str, Any], status: str) -> None:
    writer = _writers.pop(id(run), None)
    if writer is not None:
        writer.add_text("status", status)
        writer.close()
