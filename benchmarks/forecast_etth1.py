"""ETTh1 univariate (OT) forecasting: the docs/results/etth1.md table, per horizon and seed.

    python benchmarks/forecast_etth1.py [--horizons 24,48,96,168,336]
        [--seeds 0,1,2] [--data ../shared/data/ett/ETTh1.csv] [--json results.json] [-- EXTRA]

Each run is exactly the documented command, in a subprocess:

    zoo run gru-regressor --dataset csv --data ETTh1.csv --set preset=ett-h1-ot \
        --set horizon=H --seed S --json -q

(EXTRA arguments after `--` are appended, e.g. `-- --set hidden_size=32`). It prints one line
per run (test MSE/MAE on the normalised scale, the best validation MSE, steps, wall and CPU
seconds of the training, the whole command's wall time), then a table per horizon: mean and
standard deviation (min-max) over the seeds, beside the repeat-last-value and seasonal-naive
baselines of the same test windows and the target. Each run trains in seconds; the whole
table takes a few minutes on a 2-core machine (run nothing else meanwhile when timing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ett" / "ETTh1.csv"
TARGETS = {
    24: ("<", 0.034),
    48: ("<", 0.050),
    96: ("<=", 0.053),
    168: ("<", 0.087),
    336: ("<", 0.081),
}


def zoo_command() -> list[str]:
    exe = Path(sys.executable).parent / "zoo"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "zoo"]


def run_one(data: Path, horizon: int, seed: int, extra: list[str], out: Path) -> dict:
    command = [
        *zoo_command(),
        "run",
        "gru-regressor",
        "--dataset",
        "csv",
        "--data",
        str(data),
        "--set",
        "preset=ett-h1-ot",
        "--set",
        f"horizon={horizon}",
        "--seed",
        str(seed),
        "--out",
        str(out),
        "--json",
        "-q",
        *extra,
    ]
    t0 = time.perf_counter()
    p = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(command)}\n{p.stderr[-2000:]}")
    doc = json.loads(p.stdout)
    test, training = doc["metrics"]["test"], doc["training"]
    return {
        "horizon": horizon,
        "seed": seed,
        "mse": test["mse"],
        "mae": test["mae"],
        "mse_raw": test["mse_raw"],
        "repeat_last_mse": test["repeat_last/mse"],
        "repeat_last_mae": test["repeat_last/mae"],
        "seasonal_mse": test["seasonal_naive_24/mse"],
        "seasonal_mae": test["seasonal_naive_24/mae"],
        "valid_mse": training["best_validation"].get("mse"),
        "best_step": training["best_validation"].get("step"),
        "steps": training["steps"],
        "train_seconds": training["seconds"],
        "train_cpu_seconds": training["cpu_seconds"],
        "threads": training["threads"],
        "command_seconds": round(wall, 1),
        "windows": test["windows"],
        "command": " ".join(["zoo", *command[len(zoo_command()) :]]),
    }


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.4f} ± {sd:.4f} ({min(values):.4f}-{max(values):.4f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--horizons", default="24,48,96,168,336")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", type=Path, help="also write every run here")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"))
    parser.add_argument("extra", nargs="*", help="more zoo run arguments (after --)")
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"{args.data}: not found (the shared data folder)")
    runs = []
    for horizon in [int(h) for h in args.horizons.split(",")]:
        for seed in [int(s) for s in args.seeds.split(",")]:
            out = args.workdir / f"etth1-h{horizon}-s{seed}.safetensors"
            r = run_one(args.data, horizon, seed, args.extra, out)
            runs.append(r)
            print(
                f"H={horizon:3d} seed={seed}  test mse {r['mse']:.4f} mae {r['mae']:.4f}  "
                f"valid {r['valid_mse']:.4f}  steps {r['steps']} (best {r['best_step']})  "
                f"train {r['train_seconds']:.0f} s / {r['train_cpu_seconds']:.0f} CPU-s, "
                f"command {r['command_seconds']:.0f} s",
                flush=True,
            )
    print(
        "\n| H | test MSE (mean ± sd, min-max) | test MAE | repeat-last MSE / MAE | "
        "seasonal-naive MSE / MAE | target | met | train wall s (max) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for horizon in sorted({r["horizon"] for r in runs}):
        rs = [r for r in runs if r["horizon"] == horizon]
        mses = [r["mse"] for r in rs]
        op, target = TARGETS.get(horizon, ("<", float("nan")))
        mean = statistics.fmean(mses)
        met = mean < target if op == "<" else mean <= target
        print(
            f"| {horizon} | {spread(mses)} | {spread([r['mae'] for r in rs])} | "
            f"{rs[0]['repeat_last_mse']:.4f} / {rs[0]['repeat_last_mae']:.4f} | "
            f"{rs[0]['seasonal_mse']:.4f} / {rs[0]['seasonal_mae']:.4f} | {op} {target} | "
            f"{'yes' if met else 'NO'} (worst seed {max(mses):.4f}) | "
            f"{max(r['train_seconds'] for r in rs):.0f} |"
        )
    print(f"\ntorch threads per run: {runs[0]['threads']}")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
