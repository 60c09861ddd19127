"""The training loop, short enough to read in one sitting.

Everything an architecture contributes is `impl.loss(module, batch)` and
`impl.evaluate(module, batches, state, task)`; everything a dataset contributes is
`data.batches(...)`. The loop seeds everything from one seed, so the same seed gives the same
weights on the same machine, and keeps the weights of the best validation score.
"""

from __future__ import annotations

import copy
import itertools
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from zoo.data import Data, move
from zoo.errors import UsageError, ZooError
from zoo.progress import Progress
from zoo.settings import TrainConfig


class TrainingDiverged(ZooError):
    """The loss became NaN or infinite; the model keeps its last good weights."""


@dataclass
class TrainResult:
    steps: int = 0
    epochs: int = 0
    examples: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    best: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "epochs": self.epochs,
            "examples": self.examples,
            "seconds": round(self.seconds, 3),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "examples_per_second": round(self.examples / self.seconds, 1) if self.seconds else None,
            "best_validation": self.best,
            "stopped_early": self.stopped_early,
        }


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA without one is a usage error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {name!r}: expected cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(
                f"--device {name}: no CUDA GPU is available to this torch "
                f"({torch.__version__}); use --device cpu or auto"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(
                f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present"
            )
    elif device.type not in ("cpu", "mps"):
        raise UsageError(f"--device {name!r}: expected cpu, cuda, cuda:N or auto")
    return device


def set_threads(threads: int) -> int:
    """Set torch's intra-op thread count (0 keeps torch's default); returns the count in use."""
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def make_optimizer(module: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in module.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=0.9)


def lr_factor(step: int, total: int, cfg: TrainConfig) -> float:
    """Multiplier of the base learning rate at `step` (warm-up, then the schedule)."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant" or total <= cfg.warmup_steps:
        return 1.0
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    # Constant until the last `decay_fraction` of the run, then the schedule's decay.
    start = 1.0 - cfg.decay_fraction
    if progress < start or cfg.decay_fraction <= 0:
        return 1.0
    progress = (progress - start) / cfg.decay_fraction
    if cfg.lr_schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


@torch.no_grad()
def evaluate(
    impl: Any,
    module: torch.nn.Module,
    data: Data,
    split: str,
    state: dict[str, Any],
    task: str,
    batch_size: int,
    device: torch.device,
) -> dict[str, float]:
    """The architecture's metrics on one split, every example counted once."""
    was_training = module.training
    module.eval()
    batches: Iterator[dict[str, Any]] = (move(b, device) for b in data.batches(split, batch_size))
    metrics = impl.evaluate(module, batches, state, task)
    module.train(was_training)
    return {k: v if isinstance(v, int) else float(v) for k, v in metrics.items()}


@torch.no_grad()
def update_ema(
    ema: dict[str, torch.Tensor], module: torch.nn.Module, decay: float, step: int
) -> None:
    """Fold the module's weights after optimizer step `step` (from 1) into the average.

    The average after step t weighs the weights after step i by decay**(t - i), normalised
    (as Adam corrects its moments' bias), so the random initial weights count for nothing and
    a large decay means what it says even in short runs. Non-float buffers are copied.
    """
    share = (1.0 - decay) / (1.0 - decay**step)  # the newest weights' share: 1 at step 1
    for name, value in module.state_dict().items():
        if value.is_floating_point():
            ema[name].lerp_(value, share)
        else:
            ema[name].copy_(value)


class TrainingInterrupted(ZooError):
    """Ctrl-C during training: stopped cleanly after a step, with a checkpoint when one is kept."""

    exit_code = 130


@dataclass
class LoopState:
    """Where the loop is: with the weights, optimizer and RNG, enough to continue exactly."""

    step: int = 0
    epoch: int = 1  # the epoch in progress, from 1
    batch_in_epoch: int = 0  # batches of that epoch already trained
    epoch_rng: torch.Tensor | None = None  # the shuffle generator's state when the epoch began
    epoch_loss: float = 0.0
    best_score: float | None = None
    best_weights: dict[str, torch.Tensor] | None = None
    bad_validations: int = 0
    last_validated: int = -1
    ema: dict[str, torch.Tensor] | None = None  # the averaged weights, when ema_decay > 0
    result: TrainResult = field(default_factory=TrainResult)


@dataclass
class Checkpoint:
    """A resumable moment of training (the module's weights travel separately)."""

    loop: LoopState
    optimizer: dict[str, Any]
    rng: torch.Tensor
    cuda_rng: list[torch.Tensor] | None = None


def fit(
    impl: Any,
    module: torch.nn.Module,
    data: Data,
    state: dict[str, Any],
    task: str,
    cfg: TrainConfig,
    monitor: tuple[str, str] = ("loss", "min"),
    progress: Progress | None = None,
    *,
    resume: Checkpoint | None = None,
    checkpoint: Callable[[Checkpoint], None] | None = None,
    checkpoint_every: int = 0,
) -> TrainResult:
    """Train `module` on `data`'s train split; validate on its valid split, keep the best.

    `checkpoint(ckpt)` is called every `checkpoint_every` steps and when Ctrl-C arrives (then
    training stops after the current step with TrainingInterrupted); `resume` continues from
    such a checkpoint, giving the same weights as a run that was never interrupted.
    """
    progress = progress or Progress(enabled=False)
    device = resolve_device(cfg.device)
    set_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    shuffle_rng = torch.Generator().manual_seed(cfg.seed)
    module.to(device).train()
    optimizer = make_optimizer(module, cfg)
    base_lrs = [cfg.lr for _ in optimizer.param_groups]
    loop = LoopState(epoch_rng=shuffle_rng.get_state())
    if resume is not None:
        loop = resume.loop
        optimizer.load_state_dict(resume.optimizer)
        torch.set_rng_state(resume.rng)
        if resume.cuda_rng is not None and device.type == "cuda":
            torch.cuda.set_rng_state_all(resume.cuda_rng)
    result = loop.result
    # Weight averaging: `averaged` is a twin of the module holding the average (loop.ema holds
    # its tensors); it is what validation scores, best-weight selection keeps and fit returns.
    averaged = copy.deepcopy(module) if cfg.ema_decay else None
    if averaged is not None and loop.ema is not None:  # resumed: continue the saved average
        averaged.load_state_dict(loop.ema)
    loop.ema = averaged.state_dict() if averaged is not None else None

    per_epoch = math.ceil(data.size("train") / cfg.batch_size)
    total = cfg.steps if cfg.steps else cfg.epochs * per_epoch
    epochs = math.ceil(total / per_epoch) if per_epoch else 0
    metric, mode = monitor
    low_precision = cfg.precision == "bf16"
    has_valid = data.has("valid")
    wall0, cpu0 = time.perf_counter() - result.seconds, time.process_time() - result.cpu_seconds
    progress.start(total_steps=total, epochs=epochs)

    def validate() -> bool:
        """Score the valid split; return True when training should stop early."""
        loop.last_validated = loop.step
        scored = averaged if averaged is not None else module
        scores = evaluate(impl, scored, data, "valid", state, task, cfg.batch_size, device)
        if metric not in scores:
            raise ZooError(f"monitor metric {metric!r} missing from {sorted(scores)}")
        score = scores[metric]
        best = loop.best_score
        better = best is None or (score < best if mode == "min" else score > best)
        if better and math.isfinite(score):
            loop.best_score, loop.bad_validations = score, 0
            loop.best_weights = copy.deepcopy(scored.state_dict())
            result.best = {"step": loop.step, **scores}
        else:
            loop.bad_validations += 1
        result.history.append({"step": loop.step, "valid": scores})
        progress.validation(loop.step, scores, improved=bool(better))
        return bool(cfg.patience) and loop.bad_validations >= cfg.patience

    def snapshot() -> Checkpoint:
        result.seconds = time.perf_counter() - wall0
        result.cpu_seconds = time.process_time() - cpu0
        cuda = torch.cuda.get_rng_state_all() if device.type == "cuda" else None
        return Checkpoint(
            copy.deepcopy(loop), copy.deepcopy(optimizer.state_dict()), torch.get_rng_state(), cuda
        )

    interrupted = False

    def on_interrupt(signum: int, frame: Any) -> None:
        nonlocal interrupted
        if interrupted:  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        interrupted = True
        progress.info("interrupted: stopping after this step (Ctrl-C again to abort at once)")

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_interrupt) if in_main_thread else None
    stop = False
    try:
        for epoch in range(loop.epoch, epochs + 1):
            if epoch > loop.epoch:  # a new epoch begins
                loop.epoch, loop.batch_in_epoch, loop.epoch_loss = epoch, 0, 0.0
                loop.epoch_rng = shuffle_rng.get_state()
            else:  # the epoch in progress: a fresh start, or a resumed one
                shuffle_rng.set_state(loop.epoch_rng)
            module.train()
            batches = data.batches("train", cfg.batch_size, shuffle=True, generator=shuffle_rng)
            for batch in itertools.islice(batches, loop.batch_in_epoch, None):
                batch = move(batch, device)
                factor = lr_factor(loop.step, total, cfg)
                for group, base in zip(optimizer.param_groups, base_lrs):
                    group["lr"] = base * factor
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=low_precision):
                    loss = impl.loss(module, batch)
                value = loss.item()
                if not math.isfinite(value):
                    if loop.best_weights is not None:
                        module.load_state_dict(loop.best_weights)
                    raise TrainingDiverged(
                        f"training diverged at step {loop.step + 1} (epoch {epoch}): loss is "
                        f"{value}; try a lower --lr or --set grad_clip=1"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
                optimizer.step()
                loop.step += 1
                if loop.ema is not None:
                    update_ema(loop.ema, module, cfg.ema_decay, loop.step)
                loop.batch_in_epoch += 1
                loop.epoch_loss += value
                result.steps = loop.step
                result.examples += _batch_size(batch)
                progress.step(loop.step, epoch, value)
                if has_valid and cfg.eval_every and loop.step % cfg.eval_every == 0:
                    stop = validate()
                if stop or loop.step >= total:
                    break
                if checkpoint is not None and (
                    interrupted or (checkpoint_every and loop.step % checkpoint_every == 0)
                ):
                    checkpoint(snapshot())
                if interrupted:
                    raise TrainingInterrupted(f"interrupted at step {loop.step} of {total}")
            result.epochs = epoch
            train_loss = loop.epoch_loss / max(1, loop.batch_in_epoch)
            result.history.append({"epoch": epoch, "step": loop.step, "train_loss": train_loss})
            if has_valid and not cfg.eval_every and not stop and loop.last_validated != loop.step:
                stop = validate()
            progress.epoch(epoch, loop.step, train_loss)
            if stop:
                result.stopped_early = loop.step < total
                break
            if loop.step >= total:
                break
        if has_valid and not stop and loop.last_validated != loop.step:
            validate()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    final = loop.best_weights if loop.best_weights is not None else loop.ema
    if final is not None:
        module.load_state_dict(final)
    result.seconds = time.perf_counter() - wall0
    result.cpu_seconds = time.process_time() - cpu0
    progress.finish()
    return result


def _batch_size(batch: Any) -> int:
    if isinstance(batch, dict):
        for v in batch.values():
            if isinstance(v, torch.Tensor) and v.dim() > 0:
                return int(v.shape[0])
    return 0
