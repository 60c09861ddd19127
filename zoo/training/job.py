"""The job behind `zoo run`: create, train, evaluate the held-out splits and save one model
file, keeping checkpoints on the way; continue such a job from its checkpoint (`--resume`),
and after torchrun restarted its processes (`--max-restarts`).

On several processes every process trains and scores its share of the held-out splits; rank
0 alone saves and writes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.core import config as cfg
from zoo.core.errors import DataError, SettingError, UsageError
from zoo.core.fileio import check_writable
from zoo.core.modelfile import read_info
from zoo.core.registry import Registry, get_registry
from zoo.core.settings import TrainConfig, default_out
from zoo.training import distributed, trainer
from zoo.training.checkpoint import default_path, job_of, load_checkpoint, save_checkpoint
from zoo.training.datasets import load_data
from zoo.training.model import Model, create, save
from zoo.training.progress import Progress


@dataclass
class RunResult:
    """What `zoo run` did: the model, where it was saved, its metrics and the training facts."""

    model: Model
    path: Path
    metrics: dict[str, Any]
    training: trainer.TrainResult
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The result document (`zoo run --json`, `--metrics-out`)."""
        model = self.model
        return {
            "architecture": model.name,
            "dataset": model.dataset,
            "task": model.task,
            "path": str(self.path),
            "parameters": model.num_parameters(),
            "metrics": {k: v for k, v in self.metrics.items() if k != "training"},
            "training": self.metrics.get("training", {}),
            "timings": self.timings,
            "data": {  # what the loader says it read (Data.summary, Data.info)
                "summary": model.data.summary if model.data is not None else "",
                "info": model.data.info if model.data is not None else {},
            },
            "settings": {
                "model": cfg.to_dict(model.config),
                "data": cfg.to_dict(model.data_config),
                "train": cfg.to_dict(model.train_config),
            },
        }


def final_metrics(
    model: Model, procs: distributed.Processes | None = None
) -> dict[str, dict[str, Any]]:
    """Metrics on the held-out splits the data has (on train only if it has none).

    On several processes (`procs`; every one calls this) a network that scores by `tally`
    has each process score its share of every split, as validation does, and all get one
    process's metrics; a network with only `evaluate` is scored by rank 0 alone (the others
    get {}), since each process would otherwise score it whole."""
    assert model.data is not None
    procs = procs or distributed.Processes()
    shared = procs.distributed and model.module.shardable
    if not (shared or procs.writer):
        return {}
    held_out = [s for s in ("valid", "test") if model.data.has(s)]
    device = str(next(model.module.parameters()).device)
    scorers = procs if shared else None
    with distributed.peers_watched():
        return {
            split: model.evaluate(split=split, device=device, processes=scorers)
            for split in held_out or ["train"]
        }


def run(
    name: str | None = None,
    dataset: str | None = None,
    data: str | os.PathLike[str] | None = None,
    *,
    dev: str | os.PathLike[str] | None = None,
    test: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    progress: bool | Progress = False,
    registry: Registry | None = None,
    **settings: Any,
) -> RunResult:
    """Create, train, evaluate and save in one call, as `zoo run` does.

    A checkpoint (`<out>.ckpt.safetensors`) is written every `checkpoint_every` steps and when
    Ctrl-C stops training, and removed once the model file is saved; `resume=CHECKPOINT`
    continues such a run (then the architecture and data come from the checkpoint).
    """
    reg = registry or get_registry()
    if resume is not None:
        return _resume_run(
            name, resume, (dataset, data, dev, test), out, checkpoint_every, progress, reg, settings
        )
    if name is None:
        raise UsageError(
            "give the architecture NAME to run (`zoo list`), or a checkpoint to resume"
        )
    spec = reg.architecture(name).spec
    path = Path(out if out is not None else default_out(name, dataset or spec.default_dataset))
    check_writable(path, inputs={"--data": data, "--dev": dev, "--test": test})
    restarted = _checkpoint_of_this_job(path, checkpoint_every)
    if restarted is not None:
        return _continue_restarted(restarted, path, checkpoint_every, progress, reg)
    t0 = time.perf_counter()
    model = create(name, dataset, data, dev=dev, test=test, registry=reg, **settings)
    return _train_and_save(model, path, None, checkpoint_every or 0, progress, t0)


def _checkpoint_of_this_job(path: Path, checkpoint_every: int | None) -> Path | None:
    """After torchrun restarted the processes (`--max-restarts`, a process having died), the
    checkpoint that this same job wrote before, if any: the restarted processes run the same
    command again, and continue from it instead of starting over. A checkpoint of another
    job (another torchrun job id) is never taken."""
    if not checkpoint_every or not distributed.restart_count() or not distributed.job_id():
        return None
    ckpt = default_path(path)
    if not ckpt.exists() or job_of(ckpt) != distributed.job_id():
        return None
    return ckpt


def _continue_restarted(
    checkpoint: Path, out: Path, checkpoint_every: int | None, progress: Any, reg: Registry
) -> RunResult:
    """Continue this job's own checkpoint after torchrun restarted its processes."""
    shown = progress if isinstance(progress, Progress) else Progress(enabled=bool(progress))
    if distributed.from_environment().writer:
        shown.info(f"restart {distributed.restart_count()}: continuing from {checkpoint}")
    return resume(
        checkpoint, out=out, checkpoint_every=checkpoint_every, progress=shown, registry=reg
    )


def _resume_run(
    name: str | None,
    checkpoint: str | os.PathLike[str],
    data_options: tuple[Any, ...],
    out: Any,
    checkpoint_every: int | None,
    progress: bool | Progress,
    reg: Registry,
    settings: dict[str, Any],
) -> RunResult:
    """`run(resume=...)`: the checkpoint names the architecture and the data."""
    if any(value is not None for value in data_options):
        raise UsageError(
            "the data comes from the checkpoint when resuming: give no dataset, data, dev or "
            "test (--dataset, --data, --dev, --test)"
        )
    saved = read_info(checkpoint)["architecture"]
    if name is not None and name != saved:
        raise UsageError(f"resume {checkpoint}: the checkpoint is of {saved}, not {name}")
    return resume(
        checkpoint,
        out=out,
        checkpoint_every=checkpoint_every,
        progress=progress,
        registry=reg,
        **settings,
    )


def resume(
    checkpoint: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    progress: bool | Progress = False,
    registry: Registry | None = None,
    **train_settings: Any,
) -> RunResult:
    """Continue an interrupted `run` from its checkpoint: same step, optimizer and RNG state,
    so the final weights equal those of a run that was never interrupted.

    Only training settings may change (`lr=...` after a divergence, say); the model and its
    data come from the checkpoint. The data is reloaded and must give the same vocabularies
    or statistics as when the checkpoint was written.
    """
    t0 = time.perf_counter()
    reg = registry or get_registry()
    model, ckpt, info = load_checkpoint(checkpoint, registry=reg)
    train_names = cfg.field_names(TrainConfig)
    for key in train_settings:
        if key.removeprefix("train.") not in train_names:
            raise SettingError(
                f"{key}: only training settings can change when resuming; the model "
                "and data settings come from the checkpoint"
            )
    if train_settings:
        overrides = {k.removeprefix("train."): v for k, v in train_settings.items()}
        model.train_config = cfg.replace(model.train_config, overrides)
    path = Path(out) if out is not None else Path(info["out"])
    check_writable(path, inputs={"--resume": checkpoint})
    model.data = load_data(reg, model.dataset, model.data_config, None)
    if model.data.state != model.state:
        raise DataError(
            "the data differs from when the checkpoint was written (its vocabulary or "
            "statistics changed); resume needs the same data",
            path=getattr(model.data_config, "path", None),
        )
    every = info["checkpoint_every"] if checkpoint_every is None else checkpoint_every
    return _train_and_save(model, path, (ckpt, Path(checkpoint)), every, progress, t0)


def _train_and_save(
    model: Model,
    path: Path,
    resuming: tuple[trainer.Checkpoint, Path] | None,
    checkpoint_every: int,
    progress: bool | Progress,
    t0: float,
) -> RunResult:
    """Train (resuming a checkpoint, writing checkpoints), then evaluate the held-out splits
    and save. On several processes all train and evaluate (each its share); rank 0 alone
    saves and writes."""
    ckpt_path = resuming[1] if resuming else default_path(path)
    t1 = time.perf_counter()
    shown = progress if isinstance(progress, Progress) else Progress(enabled=bool(progress))
    if model.data is not None and model.data.summary and distributed.from_environment().writer:
        shown.info(model.data.summary)
    try:
        result, written = _train_checkpointed(
            model, path, ckpt_path, resuming, checkpoint_every, shown
        )
        t2 = time.perf_counter()
        procs = distributed.from_environment()
        metrics = final_metrics(model, procs)  # on several processes, each scores a share
        t3 = time.perf_counter()
        if procs.writer:
            model.metrics.update(metrics)
            save(model, path)
            if written or resuming:
                ckpt_path.unlink(missing_ok=True)  # the model file supersedes it
    finally:
        distributed.finish()
    timings = {
        "load": t1 - t0,
        "train": t2 - t1,
        "evaluate": t3 - t2,
        "save": time.perf_counter() - t3,
    }
    return RunResult(
        model, path, model.metrics, result, {k: round(v, 3) for k, v in timings.items()}
    )


def _train_checkpointed(
    model: Model,
    path: Path,
    ckpt_path: Path,
    resuming: tuple[trainer.Checkpoint, Path] | None,
    checkpoint_every: int,
    progress: Progress,
) -> tuple[trainer.TrainResult, list[int]]:
    """Train, keeping checkpoints; an interruption or a divergence says where the last
    checkpoint is and how to continue from it."""
    written: list[int] = []

    def keep(ckpt: trainer.Checkpoint) -> None:
        save_checkpoint(model, ckpt, ckpt_path, out=path, checkpoint_every=checkpoint_every)
        written.append(ckpt.loop.step)

    try:
        result = model.fit(
            progress,
            resume=resuming[0] if resuming else None,
            checkpoint=keep,
            checkpoint_every=checkpoint_every,
        )
    except trainer.TrainingInterrupted as e:
        raise trainer.TrainingInterrupted(
            f"{e}; checkpoint saved to {ckpt_path}; continue with: zoo run --resume {ckpt_path}",
            e.exit_code - 128,
        ) from None
    except trainer.TrainingDiverged as e:
        if written or resuming:
            step = written[-1] if written else resuming[0].loop.step  # type: ignore[index]
            raise trainer.TrainingDiverged(
                f"{e}. The last good checkpoint (step {step}) is {ckpt_path}: "
                f"zoo run --resume {ckpt_path} --lr <lower>"
            ) from None
        raise
    return result, written
