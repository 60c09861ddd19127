"""zoo's training loop against a minimal hand-written PyTorch loop, side by side, on ETTh1.

    python benchmarks/forecast_throughput.py [--horizon 96] [--steps 400]
        [--repeats 5] [--data ../shared/data/ett/ETTh1.csv] [--set key=value ...]

Both train the same network (the ETTh1 preset's recipe, same initial weights) with the same
optimizer, gradient clipping and batches in the same order, for the same number of steps and
with no validation (pure training throughput). The hand-written loop cuts its batches from
pre-built window tensors (`x[idx]`), the least work a loop can do; zoo's comes from
`Data.batches`. One uncounted pair warms both up; then the two alternate, taking turns at going first, to
share the machine's noise. It
prints each pair's windows per second and CPU seconds, and the median ratio zoo / hand. Run
nothing else meanwhile when timing. The figures: docs/results/etth1.md.
"""

from __future__ import annotations

import argparse
import copy
import gc
import math
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import zoo
from zoo.core import config as cfg
from zoo.toolkit.data import Data
from zoo.training import trainer

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ett" / "ETTh1.csv"


def hand_loop(module, x, y, order, lr, clip, decay) -> None:
    """What a person would write: Adam, MSE (each ensemble member's own, averaged), clip, step,
    the learning rate decaying linearly to zero when the recipe says so, over precomputed
    batch indices."""
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    members = list(module.members) if module.members is not None else [module]
    module.train()
    for step, idx in enumerate(order):
        if decay:
            for group in optimizer.param_groups:
                group["lr"] = lr * (1 - step / len(order))
        xb, yb = x[idx], y[idx]
        loss = torch.stack([F.mse_loss(m(xb), yb) for m in members]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
        optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--horizon", type=int, default=96)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = cfg.parse_assignments(args.assignments)
    model = zoo.create(
        "gru-regressor",
        "csv",
        args.data,
        preset="ett-h1-ot",
        horizon=args.horizon,
        steps=args.steps,
        patience=0,
        **settings,
    )
    tc = model.train_config
    if (
        tc.lr_schedule not in ("constant", "linear")
        or tc.warmup_steps
        or model.config.loss != "mse"
    ):
        raise SystemExit("the hand-written loop does constant or linear rates and MSE only")
    full = model.data
    assert full is not None
    # training only: no validation split, so both loops do exactly the same work
    data = Data(state=full.state, splits={"train": full.splits["train"]}, collate=full.collate)
    starts = list(data.splits["train"])
    windows = data.collate(starts)
    x, y = windows["x"], windows["y"]
    # the order zoo's loop will draw: the same generator, seeded as the trainer seeds it
    rng = torch.Generator().manual_seed(tc.seed)
    order: list[torch.Tensor] = []
    while len(order) < args.steps:
        perm = torch.randperm(len(starts), generator=rng)
        order.extend(perm[i : i + tc.batch_size] for i in range(0, len(perm), tc.batch_size))
    order = order[: args.steps]
    initial = copy.deepcopy(model.module.state_dict())
    print(
        f"H={args.horizon} input {model.state['input_length']}, {args.steps} steps of "
        f"{tc.batch_size} windows, {sum(p.numel() for p in model.module.parameters()):,} "
        f"parameters, threads {torch.get_num_threads()}, settings {settings or 'preset defaults'}"
    )

    def run_zoo() -> tuple[float, float, dict]:
        model.module.load_state_dict(initial)
        gc.collect()
        w0, c0 = time.perf_counter(), time.process_time()
        trainer.fit(model.module, data, tc)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        return wall, cpu, copy.deepcopy(model.module.state_dict())

    def run_hand() -> tuple[float, float, dict]:
        model.module.load_state_dict(initial)
        torch.manual_seed(tc.seed)
        gc.collect()
        w0, c0 = time.perf_counter(), time.process_time()
        hand_loop(model.module, x, y, order, tc.lr, tc.grad_clip, tc.lr_schedule == "linear")
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        return wall, cpu, copy.deepcopy(model.module.state_dict())

    ratios = []
    for r in range(-1, args.repeats):  # repeat -1 warms both paths up and is not counted
        # Take turns at going first: the second of a pair tends to run slower.
        if r % 2:
            (zoo_wall, zoo_cpu, zoo_weights), (hand_wall, hand_cpu, hand_weights) = (
                run_zoo(),
                run_hand(),
            )
        else:
            (hand_wall, hand_cpu, hand_weights), (zoo_wall, zoo_cpu, zoo_weights) = (
                run_hand(),
                run_zoo(),
            )
        same = all(torch.equal(zoo_weights[k], v) for k, v in hand_weights.items())

        n = sum(len(i) for i in order)
        ratio = (n / zoo_wall) / (n / hand_wall)
        if r < 0:
            continue
        ratios.append(ratio)
        print(
            f"repeat {r + 1}: zoo {n / zoo_wall:8.0f} windows/s ({zoo_wall:.2f} s, "
            f"{zoo_cpu:.2f} CPU-s)   hand {n / hand_wall:8.0f} windows/s ({hand_wall:.2f} s, "
            f"{hand_cpu:.2f} CPU-s)   ratio {ratio:.3f}   same weights: {same}"
        )
    print(
        f"median throughput ratio zoo / hand-written: {statistics.median(ratios):.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f}; target >= 0.95)"
    )
    assert math.isfinite(statistics.median(ratios))


if __name__ == "__main__":
    main()
