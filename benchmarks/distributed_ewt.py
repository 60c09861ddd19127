"""Two processes on EWT as a user types the command, against one process: issue 29's figure.

    python benchmarks/distributed_ewt.py [--data ../shared/data] [--out-dir /tmp/zoo-dist-ewt]
                                         [--repeats 2] [--epochs 1] [--extra ARG ...]

Three commands, each run `--repeats` times, taking turns at going first (medians reported),
after one warm-up run that fills the prepared-data cache (so no row pays for the first parse):

    zoo run lstm-tagger --dataset conllu --data EWT --epochs 1 --nproc-per-node 2   # no --threads
    zoo run lstm-tagger --dataset conllu --data EWT --epochs 1 --set threads=1      # one thread
    zoo run lstm-tagger --dataset conllu --data EWT --epochs 1                      # recipe: 2

The first is what a user types: each of the two processes takes cores / 2 threads
(zoo/training/launch.py). Measured per run (benchmarks/distributed_speed.py's `run_once`): the
command's wall time, the CPU-seconds of all its processes, the trainer's wall time per epoch
(the validation of the epoch included, sharded on two processes), the peak RSS of each rank
(`--json`'s `peak_rss_mib`, getrusage in each process), the test accuracy and the best
validation accuracy the run reports, and zoo's own split of the wall time (load, train,
evaluate, save). Speed-ups are against the one-thread process (the issue's goal: at least
1.6x per epoch) and against the recipe's two-thread process.

`--extra` appends arguments to every command: `--extra=--set --extra=limit=200 --extra=--steps --extra=3`
checks the script in a minute (the figures then mean nothing). One epoch of the full EWT
takes about a minute per run on a 2-core machine: the default (2 repeats) takes about 8
minutes. Prints one line per run and one JSON document (also written to OUT-DIR). Results:
docs/results/distributed.md, "Two processes as typed, with sharded validation".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from distributed_speed import ZOO, median_row, run_once

REPO = Path(__file__).resolve().parents[1]
SETUPS = {  # name -> (processes, extra arguments)
    "2 processes, as typed": (2, []),
    "1 process, 1 thread": (1, ["--set", "threads=1"]),
    "1 process, recipe's threads": (1, []),
}


def base_args(data: Path, opts: Any) -> list[str]:
    args = ["lstm-tagger", "--dataset", "conllu", "--data", str(data / "ud-english-ewt")]
    args += ["--epochs", str(opts.epochs), "--no-log", *opts.extra]
    return args


def warm_up(args: list[str], out_dir: Path) -> None:
    """One short run, so that the prepared-data cache is filled before any measured run."""
    command = [*ZOO, "run", *args, "--steps", "1", "--out", str(out_dir / "warm.st"), "-q"]
    p = subprocess.run(command, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({p.returncode}):\n{p.stderr[-2000:]}")


def measure(args: list[str], opts: Any) -> dict[str, list[dict[str, Any]]]:
    """Every setup `opts.repeats` times, the order turning each repeat."""
    names = list(SETUPS)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for repeat in range(opts.repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            nproc, extra = SETUPS[name]
            out = opts.out_dir / f"ewt-{len(runs[name])}-{nproc}p-{len(extra)}.safetensors"
            row = run_once([*args, *extra], nproc, out, "accuracy")
            row["command"] = " ".join(["zoo", "run", *args, *extra, *_launch(nproc)])
            runs[name].append(row)
            print(f"{name}: {json.dumps(row)}", file=sys.stderr, flush=True)
    return runs


def _launch(nproc: int) -> list[str]:
    return ["--nproc-per-node", str(nproc)] if nproc > 1 else []


def summary(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Speed-ups of the two processes against each one-process setup."""
    two = rows["2 processes, as typed"]
    out = {}
    for name in ("1 process, 1 thread", "1 process, recipe's threads"):
        one = rows[name]
        out[f"vs {name}"] = {
            "per_epoch": round(one["train_s_per_epoch"] / two["train_s_per_epoch"], 3),
            "wall": round(one["wall_s"] / two["wall_s"], 3),
            "cpu_ratio": round(two["cpu_s"] / one["cpu_s"], 3),
        }
    out["goal_per_epoch_vs_1_thread"] = 1.6
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--out-dir", type=Path, default=Path("/tmp/zoo-dist-ewt"))
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--extra", action="append", default=[], help="one more zoo run argument")
    opts = ap.parse_args()
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    args = base_args(opts.data, opts)
    warm_up(args, opts.out_dir)
    rows = {name: median_row(runs) for name, runs in measure(args, opts).items()}
    report = {"cpus": os.cpu_count(), "rows": rows, "speedups": summary(rows)}
    text = json.dumps(report, indent=2)
    (opts.out_dir / "distributed-ewt.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
