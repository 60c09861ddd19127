"""One process against several: the real-data recipes trained with `--nproc-per-node N`.

    python benchmarks/distributed_speed.py [--recipes ewt scan etth1] [--nproc 1 2]
                                           [--data ../shared/data] [--out-dir /tmp/zoo-dist]
                                           [--epochs N] [--repeats R]

For each recipe, runs exactly what a user types, once per process count, one after the other
(nothing else running), each as a subprocess:

    zoo run NAME RECIPE-OPTIONS --nproc-per-node N --out MODEL --json -q

(`--nproc-per-node 1` is the plain one-process run, without torchrun.) Every process uses one
thread (zoo's default). Measured per run: the command's wall time, the CPU-seconds of all its
processes (getrusage of the children, torchrun's workers included), the trainer's wall time per
epoch (validation included), the peak RSS of each process (from `--json`), and the test score
the run itself reports. The recipes:

- ewt:   lstm-tagger on UD English EWT, the `conllu` defaults (test: UPOS accuracy);
- scan:  rnn-seq2seq on SCAN's simple split (test: exact match on tasks_test_simple.txt);
- etth1: gru-regressor on ETTh1, the `ett-h1-ot` preset at horizon 96 (test: MSE).

`--epochs N` trains N epochs instead of the recipe's (for the time per epoch alone: its test
score is then not the recipe's); `--repeats R` runs each process count R times, taking turns
at going first, and reports the medians of the times.

Prints one line per run and then one JSON document (also written to OUT-DIR). The EWT pair
takes about 25 minutes on a 2-core machine, SCAN about 10, ETTh1 one. The figures:
docs/results/distributed.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
_EXE = Path(sys.executable).parent / "zoo"
ZOO = [str(_EXE)] if _EXE.exists() else [sys.executable, "-m", "zoo"]


def recipes(data: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (the `zoo run` arguments, the test metric the run reports)."""
    scan = data / "scan"
    return {
        "ewt": (["lstm-tagger", "--dataset", "conllu", "--data", str(data / "ud-english-ewt")],
                "accuracy"),
        "scan": (["rnn-seq2seq", "--dataset", "scan", "--data",
                  str(scan / "tasks_train_simple.txt"), "--test",
                  str(scan / "tasks_test_simple.txt")], "exact_match"),
        "etth1": (["gru-regressor", "--dataset", "csv", "--data", str(data / "ett" / "ETTh1.csv"),
                   "--set", "preset=ett-h1-ot", "--set", "horizon=96"], "mse"),
    }  # fmt: skip


def run_once(args: list[str], nproc: int, out: Path, metric: str) -> dict[str, Any]:
    """One `zoo run`, measured from outside (wall, CPU of every process) and inside (--json)."""
    launcher = ["--nproc-per-node", str(nproc)] if nproc > 1 else []
    command = [*ZOO, "run", *args, *launcher, "--out", str(out), "--json", "-q"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    doc = json.loads(p.stdout)
    training = doc["training"]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "processes": nproc,
        "threads": training["threads"],
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "train_s": training["seconds"],
        "epochs": training["epochs"],
        "steps": training["steps"],
        "train_s_per_epoch": round(training["seconds"] / max(1, training["epochs"]), 2),
        "peak_rss_mib": training["peak_rss_mib"],
        "test": doc["metrics"]["test"][metric],
        "best_validation": training["best_validation"].get(metric),
    }


def run_in_turns(name: str, args: list[str], metric: str, opts: Any) -> dict[int, list]:
    """Every process count `opts.repeats` times, the order turning each repeat."""
    runs: dict[int, list] = {nproc: [] for nproc in opts.nproc}
    for repeat in range(opts.repeats):
        order = opts.nproc if repeat % 2 == 0 else opts.nproc[::-1]
        for nproc in order:
            out = opts.out_dir / f"{name}-{nproc}proc.safetensors"
            row = run_once(args, nproc, out, metric)
            runs[nproc].append(row)
            print(f"{name} {nproc} process(es): {json.dumps(row)}", file=sys.stderr, flush=True)
    return runs


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The first run's facts with the median of each time over the repeats."""
    row = dict(runs[0])
    for key in ("wall_s", "cpu_s", "train_s", "train_s_per_epoch"):
        row[key] = round(statistics.median(r[key] for r in runs), 2)
    row["repeats"] = len(runs)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--recipes", nargs="+", default=["ewt", "scan", "etth1"])
    ap.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out-dir", type=Path, default=Path("/tmp/zoo-distributed"))
    ap.add_argument("--epochs", type=int, help="instead of the recipe's")
    ap.add_argument("--repeats", type=int, default=1)
    opts = ap.parse_args()
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    known = recipes(opts.data)
    report: dict = {"cpus": os.cpu_count(), "runs": {}}
    for name in opts.recipes:
        args, metric = known[name]
        if opts.epochs is not None:
            args = [*args, "--epochs", str(opts.epochs)]
        rows = [median_row(runs) for runs in run_in_turns(name, args, metric, opts).values()]
        base = rows[0]
        for row in rows[1:]:
            row["speedup_per_epoch"] = round(
                base["train_s_per_epoch"] / row["train_s_per_epoch"], 3
            )
            row["speedup_wall"] = round(base["wall_s"] / row["wall_s"], 3)
            row["cpu_ratio"] = round(row["cpu_s"] / base["cpu_s"], 3)
        report["runs"][name] = {"metric": metric, "rows": rows}
    text = json.dumps(report, indent=2)
    (opts.out_dir / "distributed-speed.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
