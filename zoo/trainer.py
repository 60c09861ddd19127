"""The training loop, short enough to read in one sitting.

Everything an architecture contributes is `impl.loss(module, batch)` and
`impl.evaluate(module, batches, state, task)`; everything a dataset contributes is
`data.batches(...)`. The loop seeds everything from one seed, so the same seed gives the same
weights on the same machine, and keeps the weights of the best validation score.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
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


def fit(
    impl: Any,
    module: torch.nn.Module,
    data: Data,
    state: dict[str, Any],
    task: str,
    cfg: TrainConfig,
    monitor: tuple[str, str] = ("loss", "min"),
    progress: Progress | None = None,
) -> TrainResult:
    """Train `module` on `data`'s train split; validate on its valid split, keep the best."""
    progress = progress or Progress(enabled=False)
    device = resolve_device(cfg.device)
    set_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    shuffle_rng = torch.Generator().manual_seed(cfg.seed)
    module.to(device).train()
    optimizer = make_optimizer(module, cfg)
    base_lrs = [g["lr"] for g in optimizer.param_groups]

    per_epoch = math.ceil(data.size("train") / cfg.batch_size)
    total = cfg.steps if cfg.steps else cfg.epochs * per_epoch
    epochs = math.ceil(total / per_epoch) if per_epoch else 0
    metric, mode = monitor
    has_valid = data.has("valid")
    best_score: float | None = None
    best_weights: dict[str, torch.Tensor] | None = None
    bad_validations = 0
    last_validated = -1
    result = TrainResult()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    progress.start(total_steps=total, epochs=epochs)

    def validate() -> bool:
        """Score the valid split; return True when training should stop early."""
        nonlocal best_score, best_weights, bad_validations, last_validated
        last_validated = result.steps
        scores = evaluate(impl, module, data, "valid", state, task, cfg.batch_size, device)
        if metric not in scores:
            raise ZooError(f"monitor metric {metric!r} missing from {sorted(scores)}")
        score = scores[metric]
        better = best_score is None or (score < best_score if mode == "min" else score > best_score)
        if better and math.isfinite(score):
            best_score, bad_validations = score, 0
            best_weights = copy.deepcopy(module.state_dict())
            result.best = {"step": result.steps, **scores}
        else:
            bad_validations += 1
        result.history.append({"step": result.steps, "valid": scores})
        progress.validation(result.steps, scores, improved=bool(better))
        return bool(cfg.patience) and bad_validations >= cfg.patience

    stop = False
    for epoch in range(1, epochs + 1):
        module.train()
        epoch_loss, epoch_batches = 0.0, 0
        for batch in data.batches("train", cfg.batch_size, shuffle=True, generator=shuffle_rng):
            batch = move(batch, device)
            factor = lr_factor(result.steps, total, cfg)
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base * factor
            loss = impl.loss(module, batch)
            value = loss.item()
            if not math.isfinite(value):
                if best_weights is not None:
                    module.load_state_dict(best_weights)
                raise TrainingDiverged(
                    f"training diverged at step {result.steps + 1} (epoch {epoch}): loss is "
                    f"{value}; try a lower --lr or --set grad_clip=1"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
            optimizer.step()
            result.steps += 1
            result.examples += _batch_size(batch)
            epoch_loss += value
            epoch_batches += 1
            progress.step(result.steps, epoch, value)
            if has_valid and cfg.eval_every and result.steps % cfg.eval_every == 0:
                stop = validate()
            if stop or result.steps >= total:
                break
        result.epochs = epoch
        train_loss = epoch_loss / max(1, epoch_batches)
        result.history.append({"epoch": epoch, "step": result.steps, "train_loss": train_loss})
        if has_valid and not cfg.eval_every and not stop:
            stop = validate()
        progress.epoch(epoch, result.steps, train_loss)
        if stop:
            result.stopped_early = result.steps < total
            break
        if result.steps >= total:
            break

    if has_valid and not stop and last_validated != result.steps:
        validate()
    if best_weights is not None:
        module.load_state_dict(best_weights)
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
