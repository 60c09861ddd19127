"""Speed of zoo.cells (`impl=cells`) against torch's fused layers (`impl=torch`), per cell.

    python benchmarks/cells_speed.py              # 1 thread (zoo's default)
    python benchmarks/cells_speed.py --threads 2
    python benchmarks/cells_speed.py --quick      # a smoke run, seconds

For each cell (Elman, GRU, LSTM) and each shape it builds both layers from the same seed (so
the same weights), then times them side by side, alternating torch and cells in every round so
that a busy machine slows both alike. It times a training step (forward and backward) and an
inference pass (forward under no_grad). Prints one row per (shape, cell, mode): the median
wall milliseconds and median CPU milliseconds (time.process_time) per batch for each
implementation, and the ratio cells/torch of the wall medians, then a JSON line per row.

Takes a few minutes on a 2-core machine; the two sides share any noise, but run nothing else
meanwhile when timing. The figures: docs/results/cells.md.

Shapes: `toy` is the elman-rnn default on sine-cosine (batch 32, 20 steps, 1 input, 32 units);
`lm` is the character language model of docs/results/char-lm.md (batch 64, 64 steps, one-hot input
of 111 symbols, hidden sizes giving equal parameter counts: Elman 535, GRU 300, LSTM 256).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from zoo.toolkit.cells import recurrent_layer

SHAPES = {
    "toy": {"batch": 32, "steps": 20, "input": 1, "hidden": {"rnn": 32, "gru": 32, "lstm": 32}},
    "lm": {"batch": 64, "steps": 64, "input": 111, "hidden": {"rnn": 535, "gru": 300, "lstm": 256}},
}


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench(kind: str, shape: dict, rounds: int, warmup: int) -> list[dict]:
    hidden = shape["hidden"][kind]
    layers = {}
    for impl in ("torch", "cells"):
        torch.manual_seed(0)
        layers[impl] = recurrent_layer(kind, impl, shape["input"], hidden, batch_first=True)
    x = torch.randn(shape["batch"], shape["steps"], shape["input"])

    def train_step(layer):
        def run():
            layer.zero_grad(set_to_none=True)
            out, _ = layer(x)
            out.sum().backward()

        return run

    def infer(layer):
        def run():
            with torch.no_grad():
                layer(x)

        return run

    rows = []
    for mode, make in (("train", train_step), ("infer", infer)):
        fns = {impl: make(layer) for impl, layer in layers.items()}
        for _ in range(warmup):
            for fn in fns.values():
                fn()
        times: dict[str, list[tuple[float, float]]] = {impl: [] for impl in fns}
        for _ in range(rounds):
            for impl, fn in fns.items():  # side by side: torch, cells, torch, cells, ...
                times[impl].append(timed(fn))
        row = {"kind": kind, "mode": mode, "hidden": hidden, "rounds": rounds}
        for impl, samples in times.items():
            row[f"{impl}_ms"] = round(1000 * statistics.median(w for w, _ in samples), 3)
            row[f"{impl}_cpu_ms"] = round(1000 * statistics.median(c for _, c in samples), 3)
        row["ratio"] = round(row["cells_ms"] / row["torch_ms"], 2)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per row")
    parser.add_argument("--shapes", default="toy,lm", help="comma-separated: toy, lm")
    parser.add_argument("--quick", action="store_true", help="3 rounds, toy shape only")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.shapes = 3, "toy"
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    header = f"{'shape':5s} {'cell':5s} {'mode':5s} {'hidden':>6s}  {'torch ms':>9s} {'cpu':>8s}  {'cells ms':>9s} {'cpu':>8s}  {'cells/torch':>11s}"
    print(header)
    results = []
    for shape_name in args.shapes.split(","):
        shape = SHAPES[shape_name]
        for kind in ("rnn", "gru", "lstm"):
            for row in bench(kind, shape, args.rounds, warmup=2):
                row = {"shape": shape_name, "threads": torch.get_num_threads(), **row}
                results.append(row)
                print(
                    f"{shape_name:5s} {kind:5s} {row['mode']:5s} {row['hidden']:6d}  "
                    f"{row['torch_ms']:9.2f} {row['torch_cpu_ms']:8.2f}  "
                    f"{row['cells_ms']:9.2f} {row['cells_cpu_ms']:8.2f}  {row['ratio']:10.2f}x",
                    flush=True,
                )
    for row in results:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
