"""Two costs of a data-parallel step that do not halve with two processes, measured apart.

    python -m torch.distributed.run --standalone --nproc-per-node 2 benchmarks/ddp_parts.py
        [--model ewt.safetensors | --parameters 4080671] [--threads 1] [--repeats 30]

- the gradient all-reduce (gloo, CPU): one flat float32 tensor of the model's parameter
  count, as DistributedDataParallel reduces a step's gradients (in buckets);
- the optimizer step: zoo's Adam (`zoo.training.optimizers`: `make_optimizer`, torch's
  `foreach` step, taken by zoo's `step`) over the model's tensors, which every process runs in full where one process runs
  it once; and, beside it, torch's per-tensor loop (its CPU default, zoo's before 2026-12-06).

Each is timed --repeats times after three warm-ups (the all-reduce after a barrier), one
thread a process; rank 0 prints one JSON document with the medians in ms. The tensors' shapes
come from a saved model (`--model`, the EWT tagger recipe's file: 4,080,671 values in 28
tensors), or one flat tensor of `--parameters` values is used.
Results: docs/results/distributed.md, "Two processes as typed".
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist


def tensor_shapes(path: str) -> list[list[int]]:
    """The shapes of a saved model's tensors (weights and buffers alike)."""
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        names = f.keys()  # a safe_open handle is no dict: keys() is its listing
        return [f.get_slice(k).get_shape() for k in names]


def adam_step_ms(shapes: list[list[int]], foreach: bool, repeats: int) -> float:
    """The median time of zoo's Adam step over tensors of `shapes` (random gradients), with
    torch's foreach step or its per-tensor loop."""
    from zoo.core.settings import TrainConfig
    from zoo.training.optimizers import make_optimizer, step

    weights = torch.nn.ParameterList(torch.nn.Parameter(torch.randn(s)) for s in shapes)
    for w in weights:
        w.grad = torch.randn_like(w)
    adam = make_optimizer(weights, TrainConfig(optimizer="adam", lr=1e-3))
    adam.param_groups[0]["foreach"] = foreach
    return timed(lambda: step(adam), repeats, barrier=False)


def timed(step: Any, repeats: int, barrier: bool) -> float:
    """The median of `repeats` timings of `step()` in ms, after three untimed calls."""
    for _ in range(3):
        step()
    times = []
    for _ in range(repeats):
        if barrier:
            dist.barrier()
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="a saved model whose parameter count to use")
    ap.add_argument("--parameters", type=int, default=4_080_671)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    if args.model and not Path(args.model).is_file():
        ap.error(f"--model: {args.model}: no such file (a saved .safetensors model)")
    if args.parameters < 1 or args.repeats < 1 or args.threads < 1:
        ap.error("--parameters, --repeats and --threads: expected whole numbers of at least 1")
    torch.set_num_threads(args.threads)
    shapes = tensor_shapes(args.model) if args.model else [[args.parameters]]
    n = sum(math.prod(s) for s in shapes)
    dist.init_process_group("gloo")
    grads = torch.zeros(n)
    reduce_ms = timed(lambda: dist.all_reduce(grads), args.repeats, barrier=True)
    foreach_ms = adam_step_ms(shapes, True, args.repeats)
    per_tensor_ms = adam_step_ms(shapes, False, args.repeats)
    if dist.get_rank() == 0:
        doc = {"parameters": n, "tensors": len(shapes), "processes": dist.get_world_size()}
        doc |= {"threads": args.threads, "all_reduce_ms": round(reduce_ms, 2)}
        doc |= {"adam_step_ms": round(foreach_ms, 2)}
        doc |= {"adam_step_per_tensor_ms": round(per_tensor_ms, 2)}
        print(json.dumps(doc))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
