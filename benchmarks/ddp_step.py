"""Distributed training throughput: zoo's trainer against a minimal hand-written DDP loop.

    python -m torch.distributed.run --standalone --nproc-per-node 2 benchmarks/ddp_step.py
        [--data ../shared/data/ud-english-ewt] [--threads 1] [--steps 30] [--repeats 3]
        [--set NAME=VALUE ...]

The several-process version of benchmarks/tagger_speed.py. torchrun starts the processes (2
or more: with one, zoo uses no DistributedDataParallel and tagger_speed.py is the comparison,
so this one stops with a usage line); they join a gloo process group and train on the CPU. Both
loops train the same network (the `conllu` defaults: word embeddings + char CNN + 2-layer
BiLSTM) with the same optimizer (`zoo.training.optimizers.make_optimizer`: Adam at the recipe's learning
rate, clipping at its grad_clip), from the same initial weights, on the same global batches,
each process on its share of every one (the trainer's seed and shuffle generator):

- zoo:      `zoo.trainer.fit` for --steps steps: it wraps the loss in DistributedDataParallel
            and takes its share of each batch (`Data.shards`), collating as it goes;
- minimal:  a hand-written DistributedDataParallel loop over the very same shards, collated
            and weighted beforehand (zero_grad, weighted loss, backward, clip, step), so it
            pays nothing for batching.

Both pay one all-reduce a step of three float64s: zoo's `agree` (the global loss, and stop
requests), and in the minimal loop the global loss, as any DDP loop that logs it needs. The data
has no valid split, so zoo does not validate; the recipe's weight average is off (ema_decay=0
unless --set gives one), as the minimal loop keeps none. So both do the same arithmetic: after
the first repeat their weights must agree within 1e-5, which checks that they trained on the
same batches (with an average on, zoo ends with the average and the check is skipped).

zoo and minimal alternate --repeats times, taking turns at going first, each after a barrier
(after a warm-up run of the minimal loop); a run's wall time is its slowest process's, its CPU
time the sum over processes. Rank 0 prints one JSON document: words per second of each loop
(wall, and per CPU second; medians) and the ratio zoo/minimal (ratio of the medians, and median
of the per-repeat ratios). On a 2-core machine run nothing else meanwhile: 2 processes of 1
thread need both cores. The figures: docs/results/distributed.md.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import zoo
from zoo.core.settings import TrainConfig
from zoo.toolkit.data import Data, Part
from zoo.training import trainer

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-5  # the largest weight difference between the two loops' results

# A process's share of a global batch: the collated batch, its loss weight, its words.
Shard = tuple[dict[str, Any], float, int]
Run = tuple[float, float]  # wall seconds (slowest process), CPU seconds (all processes)


class NetworkLoss(torch.nn.Module):
    """The network's loss as forward, so that DDP reduces the gradients of what it computed."""

    def __init__(self, network: torch.nn.Module):
        super().__init__()
        self.network = network

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.network.loss(batch)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "ud-english-ewt"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    return ap.parse_args()


def reduced(value: float, op: dist.ReduceOp.RedOpType = dist.ReduceOp.SUM) -> float:
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor, op=op)
    return float(tensor.item())


def my_shards(data: Data, cfg: TrainConfig, part: Part, steps: int) -> list[Shard]:
    """This process's share of the first `steps` global batches in the order zoo's trainer
    draws them (its seed, its generator carried from epoch to epoch), weighted as it weighs
    them. A share that is empty (a last batch smaller than the world) runs with weight 0."""
    rng = torch.Generator().manual_seed(cfg.seed)
    out: list[Shard] = []
    while len(out) < steps:
        for shard in data.shards("train", cfg.batch_size, part, shuffle=True, generator=rng):
            weight = shard.examples * part.world / max(1, shard.total)
            words = int(shard.batch["lengths"].sum()) if shard.examples else 0
            out.append((shard.batch, weight, words))
            if len(out) == steps:
                break
    return out


def minimal_loop(module: torch.nn.Module, shards: list[Shard], cfg: TrainConfig) -> None:
    torch.manual_seed(cfg.seed)  # the dropout draws of zoo's trainer, which seeds the same
    ddp = DistributedDataParallel(NetworkLoss(module))
    opt = trainer.make_optimizer(module, cfg)
    world = dist.get_world_size()
    for batch, weight, _ in shards:
        loss = ddp(batch)
        logged = torch.tensor([loss.item() * weight / world, 0.0, 0.0], dtype=torch.float64)
        dist.all_reduce(logged)  # the global loss, as a loop that logs it needs
        opt.zero_grad(set_to_none=True)
        (loss * weight).backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
        opt.step()


def timed(fn: Callable[[], None]) -> Run:
    """One run of `fn` on every process, started together: the slowest process's wall
    seconds and the CPU seconds of all of them."""
    gc.collect()
    dist.barrier()
    w, c = time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    return reduced(wall, dist.ReduceOp.MAX), reduced(cpu)


def weight_gap(a: torch.nn.Module, b: torch.nn.Module) -> float:
    """The largest difference between two modules' floating weights, over all processes."""
    theirs = b.state_dict()
    gap = max(
        float((v - theirs[k]).abs().max())
        for k, v in a.state_dict().items()
        if v.is_floating_point() and v.numel()
    )
    return reduced(gap, dist.ReduceOp.MAX)


def alternate(
    loops: dict[str, Callable[[], None]],
    modules: dict[str, torch.nn.Module],
    repeats: int,
) -> tuple[dict[str, list[Run]], float]:
    """Each loop --repeats times, taking turns at going first; also the weight difference
    between the loops' results after the first repeat (`modules`: what each one trains)."""
    runs: dict[str, list[Run]] = {name: [] for name in loops}
    gap = float("nan")
    for i in range(repeats):
        order = list(loops) if i % 2 == 0 else list(loops)[::-1]
        for name in order:
            runs[name].append(timed(loops[name]))
        if i == 0:
            gap = weight_gap(modules["zoo"], modules["minimal"])
    return runs, gap


def rate(runs: list[Run], words: int) -> dict[str, float]:
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    return {
        "words_per_s": round(words / wall),
        "words_per_cpu_s": round(words / cpu),
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
    }


def compare(runs: dict[str, list[Run]], words: int) -> dict[str, Any]:
    """Both loops' rates and zoo/minimal, wall (index 0) and CPU (index 1)."""
    z, m = runs["zoo"], runs["minimal"]
    out: dict[str, Any] = {"zoo": rate(z, words), "minimal": rate(m, words)}
    for i, suffix in ((0, ""), (1, "_cpu")):
        of_medians = statistics.median(r[i] for r in m) / statistics.median(r[i] for r in z)
        of_repeats = statistics.median(mr[i] / zr[i] for zr, mr in zip(z, m))
        out[f"zoo_vs_minimal{suffix}"] = round(of_medians, 3)
        out[f"zoo_vs_minimal{suffix}_median_of_repeats"] = round(of_repeats, 3)
    out["runs"] = {k: [[round(w, 3), round(c, 3)] for w, c in v] for k, v in runs.items()}
    return out


def start() -> tuple[int, int]:
    """Join the process group torchrun set up for (rank, world size); one process stops."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world < 2:
        raise SystemExit(
            "ddp_step.py: run it under torchrun with --nproc-per-node 2 or more "
            "(one process: benchmarks/tagger_speed.py)"
        )
    dist.init_process_group("gloo")  # zoo's trainer joins this one
    return dist.get_rank(), world


def main() -> None:
    opts = parse_args()
    torch.set_num_threads(opts.threads)
    rank, world = start()
    settings = {"ema_decay": "0", **dict(s.split("=", 1) for s in opts.sets)}
    model = zoo.create("lstm-tagger", "conllu", opts.data, steps=opts.steps, **settings)
    cfg = dataclasses.replace(model.train_config, threads=opts.threads, device="cpu")
    data = model.data
    train_only = Data(data.state, {"train": data.splits["train"]}, data.collate, data.length)
    initial = copy.deepcopy(model.module.state_dict())
    shards = my_shards(train_only, cfg, Part(rank, world), opts.steps)
    words = round(reduced(sum(s[2] for s in shards)))
    modules: dict[str, torch.nn.Module] = {}

    def fresh(name: str) -> torch.nn.Module:
        module = type(model.module)(model.config, model.state)
        module.load_state_dict(initial)
        modules[name] = module.train()
        return module

    def zoo_loop() -> None:
        trainer.fit(fresh("zoo"), train_only, cfg)

    loops = {"minimal": lambda: minimal_loop(fresh("minimal"), shards, cfg), "zoo": zoo_loop}
    loops["minimal"]()  # warm-up: first-call allocations
    runs, gap = alternate(loops, modules, opts.repeats)
    averaged = cfg.ema_decay > 0  # zoo then ends with the average: nothing to compare
    report = {
        "world_size": world,
        "threads": opts.threads,
        "steps": opts.steps,
        "batch_size": cfg.batch_size,
        "words": words,
        "parameters": model.num_parameters(),
        "settings": settings,
        **compare(runs, words),
        "weights_max_abs_diff": None if averaged else gap,
        "weights_match": None if averaged else gap <= TOLERANCE,
    }
    if rank == 0:
        print(json.dumps(report, indent=2))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
