"""The training loop, short enough to read in one sitting.

Everything a network contributes is `network.loss(batch)` and `network.evaluate(batches)`;
everything a dataset contributes is `data.batches(...)`. One seed drives initialisation,
shuffling and dropout, so the same seed gives the same weights on the same machine; the
weights of the best validation score are kept.

A `Trainer` is one run: `fit` walks the epochs, `train_epoch` the batches, `train_step` does
one optimizer step, `validate` is the only place that scores the validation split and decides
about the best weights and early stopping. Where distributed training hooks in:
- `batches`: the training batches of an epoch (each process takes its share of every one);
- `train_step`, at `loss.backward()`: gradients (DistributedDataParallel reduces them there);
- `agree`: one all-reduce a step, for the global loss and a stop request seen by any process;
- `evaluate_split`: validation metrics (each process scores its share of the split and the
  tallies are merged, so all get one process's metrics; `evaluate`);
- `checkpoint_if_due` and the progress display: what is written (one process writes), with
  every process's random state gathered into the checkpoint.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from zoo.core.errors import (
    ModelFileError,
    TrainingDiverged,
    TrainingInterrupted,
    TrainingStopped,
    UsageError,
    ZooError,
)
from zoo.core.formatting import headline
from zoo.core.settings import TrainConfig
from zoo.toolkit.data import Data, Part, move
from zoo.toolkit.metrics import Tally
from zoo.toolkit.network import Network
from zoo.training import distributed
from zoo.training.events import TrainingEvents
from zoo.training.guard import Checked
from zoo.training.optimizers import make_optimizer
from zoo.training.optimizers import step as optimizer_step
from zoo.training.progress import Progress


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
    peak_rss_mib: list[float] | None = None  # per process, by rank (None: not measurable)

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
            "processes": len(self.peak_rss_mib or [None]),
            "peak_rss_mib": self.peak_rss_mib,
            "history": thinned(self.history, HISTORY_LIMIT),
        }


# The most history entries a result document (and so a model file) keeps: a long run with
# frequent validation keeps an evenly spaced selection, its first and last entries included.
HISTORY_LIMIT = 400


def thinned(entries: list[Any], limit: int) -> list[Any]:
    """At most `limit` of `entries`, evenly spaced, the first and the last kept."""
    if len(entries) <= limit:
        return list(entries)
    last = len(entries) - 1
    picks = sorted({round(i * last / (limit - 1)) for i in range(limit)})
    return [entries[i] for i in picks]


def scalar_metrics(scores: dict[str, Any], headline: tuple[str, ...] = ()) -> dict[str, Any]:
    """The overall numbers of a validation (accuracy, loss, ...) and the architecture's
    headline metrics, for the history: not the other per-class ones (`recall/NOUN`) nor
    tables (the confusion matrix), which would make a long run's history large."""
    return {
        k: v
        for k, v in scores.items()
        if ("/" not in k or k in headline) and isinstance(v, (int, float))
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


@functools.cache
def _cpu_has_bf16() -> bool:
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@contextlib.contextmanager
def forward_precision(device: torch.device, precision: str) -> Iterator[None]:
    """The training forward pass's arithmetic: torch.autocast to bfloat16 for precision=bf16.
    On a CPU without bfloat16 instructions (AVX2 only) torch still sends an autocast LSTM or
    GRU to oneDNN, which has no bf16 primitive there ("could not create a primitive
    descriptor"): oneDNN is switched off for the step, so recurrent layers run torch's own
    kernels in float32 while matrix products stay in bfloat16."""
    if precision != "bf16":
        yield
        return
    mkldnn_was = torch.backends.mkldnn.enabled
    if device.type == "cpu" and not _cpu_has_bf16():
        torch.backends.mkldnn.enabled = False
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    finally:
        torch.backends.mkldnn.enabled = mkldnn_was


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
    rng: torch.Tensor  # torch's RNG state (of rank 0, on several processes)
    cuda_rng: list[torch.Tensor] | None = None
    process_rngs: list[torch.Tensor] | None = None  # several processes: each one's, by rank
    # what the network carries from step to step (`carried_state`), each process's, by rank
    carried: list[dict[str, torch.Tensor]] | None = None


@torch.no_grad()
def evaluate(
    checked: Checked,
    data: Data,
    split: str,
    batch_size: int,
    device: torch.device,
    procs: distributed.Processes | None = None,
) -> dict[str, Any]:
    """The network's metrics on one split, every example counted once. On several processes
    (`procs`) a network that scores by `tally` and `score` has each process score its share
    (`evaluation_share`) and the tallies merged, so every process gets the metrics one
    process gets on the whole split; a network with only `evaluate` is scored whole by each
    process, as before sharding existed."""
    network = checked.network
    was_training = network.training
    network.eval()
    try:
        if procs is not None and procs.distributed and network.shardable:
            part = Part(procs.rank, procs.world_size)
            share = evaluation_share(data, split, batch_size, part)
            mine = checked.tally(move(b, device) for b in share)
            tallies = distributed.all_gather_objects(mine, device)
            metrics = checked.score(Tally.merged(tallies))
        else:
            batches = (move(b, device) for b in data.batches(split, batch_size))
            metrics = checked.evaluate(batches)
    finally:
        network.train(was_training)
    return {k: v if isinstance(v, (int, dict)) else float(v) for k, v in metrics.items()}


def evaluation_share(data: Data, split: str, batch_size: int, part: Part) -> Iterator[Any]:
    """This process's share of a split to score: whole batches in turn (batch i goes to
    process i mod N), each exactly the batch one process would score (the same examples and
    padding), so the merged tally is one process's, up to the matrix library's rounding of a
    batch scored in another process. Data that batches itself, such as
    the char LM's text streams whose batches continue one another, gives its `shards`
    instead: this process's rows of every batch (its own streams), empty shares skipped."""
    if type(data).batches is Data.batches:
        examples = data.splits.get(split, ())
        for i, idx in enumerate(data.order(split, batch_size)):
            if i % part.world == part.rank:
                yield data.collate([examples[j] for j in idx])
        return
    for shard in data.shards(split, batch_size, part):
        if shard.examples:
            yield shard.batch


class StopRequest:
    """Ctrl-C or SIGTERM during training: the first asks the loop to stop after the current
    step (and save a checkpoint), a second Ctrl-C stops at once. SIGTERM is what SLURM,
    Kubernetes and torchrun send before they stop a job. Only the main thread takes signals."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, progress: Progress):
        self.signum = 0  # the signal that asked to stop, 0 while none has
        self.progress = progress
        self.previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum != 0

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self.handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = self.signum or signum
        name = "interrupted" if signum == signal.SIGINT else "terminated (SIGTERM)"
        self.progress.info(f"{name}: stopping after this step (Ctrl-C again to abort at once)")


class LossOf(torch.nn.Module):
    """The network's loss as a module's forward, so DistributedDataParallel (which reduces
    gradients for what its forward computed) can wrap any plugin's network unchanged."""

    def __init__(self, checked: Checked):
        super().__init__()
        self.network = checked.network
        self.checked = checked

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.checked.loss(batch)


def averaged_copy(network: Network) -> Network:
    """A twin of the network for the weight average; config and data state stay shared."""
    memo = {id(network.config): network.config, id(network.state): network.state}
    return copy.deepcopy(network, memo)


class Trainer:
    """One training run of `checked.network` on `data`'s train split (see the module doc)."""

    def __init__(
        self,
        checked: Checked,
        data: Data,
        cfg: TrainConfig,
        *,
        monitor: tuple[str, str] = ("loss", "min"),
        headline: tuple[str, ...] = (),
        progress: Progress | None = None,
        checkpoint: Callable[[Checkpoint], None] | None = None,
        checkpoint_every: int = 0,
        events: TrainingEvents | None = None,
    ):
        self.checked, self.network, self.data, self.cfg = checked, checked.network, data, cfg
        self.metric, self.mode = monitor
        self.headline = headline  # the metrics shown and kept in the history
        self.progress = progress or Progress(enabled=False)
        self.save_checkpoint, self.checkpoint_every = checkpoint, checkpoint_every
        self.device = resolve_device(cfg.device)
        self.procs = distributed.start(self.device.type)
        if self.procs.distributed and self.device.type == "cuda":
            self.device = torch.device("cuda", self.procs.local_rank)  # a GPU per process
        # one process writes: the others show no progress and tell loggers nothing
        self.events = events if self.procs.writer else None
        if not self.procs.writer:
            self.progress = Progress(enabled=False)
        set_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.shuffle_rng = torch.Generator().manual_seed(cfg.seed)
        self.network.to(self.device).train()
        self.loss_of = self.wrap_for_processes()
        self.optimizer = make_optimizer(self.network, cfg)
        self.base_lrs = [cfg.lr for _ in self.optimizer.param_groups]
        self.loop = LoopState(epoch_rng=self.shuffle_rng.get_state())
        if self.procs.world_size > data.size("train"):
            raise UsageError(
                f"{self.procs.world_size} processes but {data.size('train')} training "
                "example(s): use at most one process per example (--nproc-per-node)"
            )
        per_epoch = math.ceil(data.size("train") / cfg.batch_size)
        self.total = cfg.steps if cfg.steps else cfg.epochs * per_epoch
        self.epochs = math.ceil(self.total / per_epoch) if per_epoch else 0
        self.has_valid = data.has("valid")
        self.averaged: Network | None = None
        self.early_stop = False
        self.stop = StopRequest(self.progress)
        self.agreed_stop = 0  # several processes: the signal any of them got, as of `agree`

    @property
    def result(self) -> TrainResult:
        return self.loop.result

    def wrap_for_processes(self) -> Any:
        """What computes a batch's loss: the network's own `loss` on one process; on several,
        the same through DistributedDataParallel, which averages the gradients over them."""
        if not self.procs.distributed:
            return self.checked.loss
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        # gradients as views of DDP's buckets: no copy of every gradient in and out of them
        return DistributedDataParallel(
            LossOf(self.checked), device_ids=ids, gradient_as_bucket_view=True
        )

    def fit(self, resume: Checkpoint | None = None) -> TrainResult:
        """Train to the end (steps, epochs or early stopping); leave the best weights (or the
        average) in the network. Loggers hear how it ended, whatever the ending."""
        status = "failed"
        try:
            result = self.train_to_end(resume)
            status = "finished"
            return result
        except TrainingInterrupted:
            status = "interrupted"
            raise
        except TrainingDiverged:
            status = "diverged"
            raise
        except TrainingStopped as e:
            status = e.status
            raise
        finally:
            if self.events is not None:
                self.events.ended(status, self.result.as_dict())

    def train_to_end(self, resume: Checkpoint | None) -> TrainResult:
        if resume is not None:
            self.restore(resume)
        self.start_averaging()
        result, loop = self.result, self.loop
        self.clock = (
            time.perf_counter() - result.seconds,
            time.process_time() - result.cpu_seconds,
        )
        self.progress.start(total_steps=self.total, epochs=self.epochs, at_step=loop.step)
        if self.events is not None:
            self.events.started(self.total, self.epochs, loop.step)
        with self.stop, distributed.peers_watched():
            for epoch in range(loop.epoch, self.epochs + 1):
                if self.train_epoch(epoch):
                    break
            if self.has_valid and not self.early_stop and loop.last_validated != loop.step:
                self.validate()
            result.peak_rss_mib = distributed.peak_rss_mib(self.device)
        final = loop.best_weights if loop.best_weights is not None else loop.ema
        if final is not None:
            self.network.load_state_dict(final)
        self.calibrate()
        self.tick()
        self.progress.finish()
        return result

    def restore(self, ckpt: Checkpoint) -> None:
        """Continue from a checkpoint: loop position, optimizer and RNG state."""
        self.loop = ckpt.loop
        self.optimizer.load_state_dict(by_position(ckpt.optimizer, self.optimizer_names()))
        rngs, rank = ckpt.process_rngs or [], self.procs.rank
        torch.set_rng_state(rngs[rank] if rank < len(rngs) else ckpt.rng)
        if ckpt.cuda_rng is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(ckpt.cuda_rng)
        carried = ckpt.carried or []
        self.checked.load_carried_state(carried[rank] if rank < len(carried) else {})

    def calibrate(self, network: Network | None = None) -> None:
        """The network's optional `calibrate(data)`: state it derives from the training data
        with its weights as they are (a threshold, a temperature), before each validation
        scores them (so validation, best-weight selection and early stopping see a calibrated
        model) and once more when the final weights are in place (the model that is saved).
        In eval mode, without gradients, on every process (each holds the data)."""
        network = network if network is not None else self.network
        was_training = network.training
        network.eval()
        with torch.no_grad():
            Checked(network, self.checked.what).calibrate(self.data)
        network.train(was_training)

    def start_averaging(self) -> None:
        """Weight averaging: `averaged` holds the average (loop.ema its tensors); it is what
        validation scores, best-weight selection keeps and fit leaves in the network."""
        self.averaged = averaged_copy(self.network) if self.cfg.ema_decay else None
        if self.averaged is not None and self.loop.ema is not None:  # resumed: continue it
            self.averaged.load_state_dict(self.loop.ema)
        self.loop.ema = self.averaged.state_dict() if self.averaged is not None else None

    def moment(self) -> dict[str, float]:
        """The learning rate now and the seconds since training began, for the history."""
        lr = self.optimizer.param_groups[0]["lr"]
        return {"lr": lr, "seconds": round(time.perf_counter() - self.clock[0], 3)}

    def tick(self) -> None:
        """Bring the run's wall and CPU seconds up to now."""
        self.result.seconds = time.perf_counter() - self.clock[0]
        self.result.cpu_seconds = time.process_time() - self.clock[1]

    # ------------------------------------------------------------------------ epochs
    def train_epoch(self, epoch: int) -> bool:
        """Train one epoch (or what is left of it); True when training is over."""
        self.begin_epoch(epoch)
        loop, eval_every = self.loop, self.cfg.eval_every
        for batch, weight, examples in self.batches():
            self.train_step(batch, epoch, weight, examples)
            if self.has_valid and eval_every and loop.step % eval_every == 0:
                self.early_stop = self.validate()
            if self.early_stop or loop.step >= self.total:
                break
            self.checkpoint_if_due()
        return self.end_epoch(epoch)

    def begin_epoch(self, epoch: int) -> None:
        loop = self.loop
        if epoch > loop.epoch:  # a new epoch begins
            loop.epoch, loop.batch_in_epoch, loop.epoch_loss = epoch, 0, 0.0
            loop.epoch_rng = self.shuffle_rng.get_state()
        else:  # the epoch in progress: a fresh start, or a resumed one
            self.shuffle_rng.set_state(loop.epoch_rng)
        self.network.train()

    def batches(self) -> Iterator[tuple[dict[str, Any], float | None, int]]:
        """The epoch's training batches from where the loop stands, on the device, each with
        its loss weight and the global batch's example count. The shuffle comes from the
        seeded generator, so a resumed epoch replays the same order. On several processes
        each takes its share of every batch of that same order, weighted by its share."""
        cfg, procs = self.cfg, self.procs
        kwargs = {"shuffle": True, "generator": self.shuffle_rng}
        if not procs.distributed:
            epoch = self.data.batches("train", cfg.batch_size, **kwargs)
            for batch in itertools.islice(epoch, self.loop.batch_in_epoch, None):
                yield move(batch, self.device), None, _batch_size(batch)
            return
        part = Part(procs.rank, procs.world_size)
        shards = self.data.shards("train", cfg.batch_size, part, **kwargs)
        for shard in itertools.islice(shards, self.loop.batch_in_epoch, None):
            weight = shard.examples * procs.world_size / max(1, shard.total)
            yield move(shard.batch, self.device), weight, shard.total

    def end_epoch(self, epoch: int) -> bool:
        loop, result = self.loop, self.result
        result.epochs = epoch
        train_loss = loop.epoch_loss / max(1, loop.batch_in_epoch)
        result.history.append(
            {"epoch": epoch, "step": loop.step, "train_loss": train_loss, **self.moment()}
        )
        validated_now = loop.last_validated == loop.step
        if self.has_valid and not self.cfg.eval_every and not self.early_stop and not validated_now:
            self.early_stop = self.validate()
        self.progress.epoch(epoch, loop.step, train_loss)
        if self.events is not None:
            self.events.epoch_ended(epoch, loop.step, train_loss, **self.moment())
        if self.early_stop:
            result.stopped_early = loop.step < self.total
            return True
        return loop.step >= self.total

    # -------------------------------------------------------------------------- steps
    def train_step(
        self, batch: dict[str, Any], epoch: int, weight: float | None = None, examples: int = 0
    ) -> None:
        """One optimizer step. `weight` (several processes) scales this process's loss by its
        share of the global batch, so the averaged gradient is the global batch's."""
        loop, cfg = self.loop, self.cfg
        factor = lr_factor(loop.step, self.total, cfg)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor
        with forward_precision(self.device, cfg.precision):
            loss = self.loss_of(batch)
        value, agreeing = loss.item(), None
        if weight is not None:  # the all-reduce runs while the backward pass does
            agreeing = self.start_agreeing(value * weight / self.procs.world_size)
            loss = loss * weight
        elif not math.isfinite(value):
            self.diverged(value, epoch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if agreeing is not None:
            value = self.agree(agreeing)
            if not math.isfinite(value):
                self.diverged(value, epoch)
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), cfg.grad_clip)
        optimizer_step(self.optimizer)
        loop.step += 1
        if loop.ema is not None:
            update_ema(loop.ema, self.network, cfg.ema_decay, loop.step)
        loop.batch_in_epoch += 1
        loop.epoch_loss += value
        self.result.steps = loop.step
        self.result.examples += examples
        self.progress.step(loop.step, epoch, value)

    def start_agreeing(self, share: float) -> Any:
        """Several processes: one all-reduce per step gives every process the global batch's
        loss (NaN on any process is NaN on all, so all stop together) and whether any was
        asked to stop (so all stop after the same step). Started before the backward pass,
        finished after it by `agree`."""
        signum = self.stop.signum
        asked = [float(signum == signal.SIGINT), float(signum == signal.SIGTERM)]
        return distributed.start_sum([share, *asked], self.device)

    def agree(self, started: Any) -> float:
        total, interrupts, terms = distributed.finish_sum(started)
        if interrupts or terms:
            self.agreed_stop = signal.SIGINT if interrupts else signal.SIGTERM
        return total

    def stop_signal(self) -> int:
        """The signal that asks training to stop after this step (0: none). On several
        processes, the one agreed at this step's all-reduce, so that all stop together even
        when a signal reaches one process between two steps."""
        return self.agreed_stop if self.procs.distributed else self.stop.signum

    def diverged(self, value: float, epoch: int) -> None:
        """A NaN or infinite loss: keep the last good weights and stop with one clear line."""
        if self.loop.best_weights is not None:
            self.network.load_state_dict(self.loop.best_weights)
        raise TrainingDiverged(
            f"training diverged at step {self.loop.step + 1} (epoch {epoch}): loss is "
            f"{value}; try a lower --lr or --set grad_clip=1"
        )

    # --------------------------------------------------------------------- validation
    def evaluate_split(self, network: Network, split: str) -> dict[str, Any]:
        checked = Checked(network, self.checked.what)
        return evaluate(checked, self.data, split, self.cfg.batch_size, self.device, self.procs)

    def validate(self) -> bool:
        """Score the valid split, keep the best weights; True when training should stop early."""
        loop = self.loop
        loop.last_validated = loop.step
        scored = self.averaged if self.averaged is not None else self.network
        self.calibrate(scored)
        scores = self.evaluate_split(scored, "valid")
        if self.metric not in scores:
            raise ZooError(f"monitor metric {self.metric!r} missing from {sorted(scores)}")
        score, best = scores[self.metric], loop.best_score
        better = best is None or (score < best if self.mode == "min" else score > best)
        if better and math.isfinite(score):
            loop.best_score, loop.bad_validations = score, 0
            loop.best_weights = copy.deepcopy(scored.state_dict())
            self.result.best = {"step": loop.step, **scores}
        else:
            loop.bad_validations += 1
        overall = scalar_metrics(scores, self.headline)
        self.result.history.append({"step": loop.step, "valid": overall, **self.moment()})
        shown = headline(scores, self.headline)
        self.progress.validation(loop.step, shown, improved=bool(better))
        if self.events is not None:
            self.events.validated(loop.step, overall, bool(better))
        return bool(self.cfg.patience) and loop.bad_validations >= self.cfg.patience

    # ---------------------------------------------------------------------- checkpoints
    def checkpoint_if_due(self) -> None:
        """Save a checkpoint every `checkpoint_every` steps and on Ctrl-C; then stop if asked."""
        every, step, signum = self.checkpoint_every, self.loop.step, self.stop_signal()
        due = signum or (every and step % every == 0)
        if self.save_checkpoint is not None and due:
            rngs = distributed.all_gather_cpu(torch.get_rng_state(), self.device)
            mine = {k: v.detach().cpu().clone() for k, v in self.checked.carried_state().items()}
            carried = distributed.all_gather_objects(mine, self.device)
            if self.procs.writer:
                self.save_checkpoint(self.snapshot(rngs, carried))
        if signum:
            what = "interrupted" if signum == signal.SIGINT else "terminated"
            raise TrainingInterrupted(f"{what} at step {step} of {self.total}", signum)

    def optimizer_names(self) -> list[str]:
        """The names of the optimizer's parameters, in its order (see `by_name`)."""
        names = {id(p): name for name, p in self.network.named_parameters()}
        return [names[id(p)] for group in self.optimizer.param_groups for p in group["params"]]

    def snapshot(
        self,
        process_rngs: list[torch.Tensor] | None = None,
        carried: list[dict[str, torch.Tensor]] | None = None,
    ) -> Checkpoint:
        self.tick()
        cuda = torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None
        optimizer = by_name(copy.deepcopy(self.optimizer.state_dict()), self.optimizer_names())
        loop, rng = copy.deepcopy(self.loop), torch.get_rng_state()
        rngs = process_rngs if process_rngs and len(process_rngs) > 1 else None
        return Checkpoint(loop, optimizer, rng, cuda, rngs, carried if carried else None)


def by_name(state: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """An optimizer's `state_dict` keyed by parameter name instead of position. torch numbers
    the parameters in the order the network registered them, and a network rebuilt from a
    checkpoint may register them in another order (a plugin that builds layers from a dict of
    its data state gets the dict back with its keys sorted, as the model file stores JSON):
    by name, each parameter gets its own moments back whatever the order."""
    groups = [{**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]]
    return {"param_groups": groups, "state": {names[i]: v for i, v in state["state"].items()}}


def by_position(state: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """`by_name` undone for this optimizer's parameter order; a checkpoint whose state does
    not fit the parameters (another network) is a ModelFileError naming the parameter."""
    position = {name: i for i, name in enumerate(names)}

    def index(name: str | int) -> int:
        if isinstance(name, int):  # a checkpoint written before names: positions as they are
            return name
        if name not in position:
            raise ModelFileError(
                f"the checkpoint's optimizer state names {name!r}, which the network does not have"
            )
        return position[name]

    # torch pairs the groups' parameter lists with its own, in its order: positions ascending
    groups = [{**g, "params": sorted(map(index, g["params"]))} for g in state["param_groups"]]
    return {"param_groups": groups, "state": {index(n): v for n, v in state["state"].items()}}


def fit(
    network: Network | Checked,
    data: Data,
    cfg: TrainConfig,
    *,
    monitor: tuple[str, str] = ("loss", "min"),
    headline: tuple[str, ...] = (),
    progress: Progress | None = None,
    resume: Checkpoint | None = None,
    checkpoint: Callable[[Checkpoint], None] | None = None,
    checkpoint_every: int = 0,
    events: TrainingEvents | None = None,
) -> TrainResult:
    """Train `network` on `data`'s train split; validate on its valid split, keep the best.

    `checkpoint(ckpt)` is called every `checkpoint_every` steps and when Ctrl-C arrives (then
    training stops after the current step with TrainingInterrupted); `resume` continues from
    such a checkpoint, giving the same weights as a run that was never interrupted.
    """
    checked = network if isinstance(network, Checked) else Checked(network, "the network")
    trainer = Trainer(
        checked,
        data,
        cfg,
        monitor=monitor,
        headline=headline,
        progress=progress,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        events=events,
    )
    return trainer.fit(resume)


def _batch_size(batch: Any) -> int:
    if isinstance(batch, dict):
        for v in batch.values():
            if isinstance(v, torch.Tensor) and v.dim() > 0:
                return int(v.shape[0])
    return 0
