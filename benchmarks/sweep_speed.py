"""Trials per hour of `zoo sweep --jobs 2` against `--jobs 1` on the same machine.

Both sweeps run the same trials: the ETTh1 H=96 recipe with only the learning rate searched
(its value does not change a trial's cost), no pruning, a seeded sampler, a fresh study each
time. They take turns (`--repeats`), so the machine's load falls on both alike; the table gives
each sweep's wall time, trials per hour and CPU-seconds of its trials, and the median ratio.

    python benchmarks/sweep_speed.py --data ../shared/data/ett/ETTh1.csv --trials 8 --repeats 2

The goal (issue 16): on a 2-core machine `--jobs 2` finishes at least 1.8x the trials per hour.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time


def sweep_once(data: str, trials: int, jobs: int) -> dict[str, float]:
    """One fresh sweep; its wall seconds and the CPU-seconds of its processes."""
    with tempfile.TemporaryDirectory(prefix="zoo-sweep-speed-") as home:
        command = [
            sys.executable, "-m", "zoo", "sweep", "gru-regressor", "--dataset", "csv",
            "--data", data, "--set", "preset=ett-h1-ot", "--set", "horizon=96",
            "--set", "lr=loguniform(1e-4,3e-3)", "--trials", str(trials), "--jobs", str(jobs),
            "--pruner", "none", "--sampler-seed", "0", "--no-log", "--json",
        ]  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            command, env={**os.environ, "ZOO_HOME": home}, capture_output=True, text=True
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            sys.exit(f"sweep --jobs {jobs} failed: {done.stderr.strip().splitlines()[-1:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "per_hour": trials * 3600 / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data/ett/ETTh1.csv")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    results: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    ratios = []
    for repeat in range(args.repeats):
        for jobs in (1, 2) if repeat % 2 == 0 else (2, 1):
            results[jobs].append(sweep_once(args.data, args.trials, jobs))
            r = results[jobs][-1]
            print(f"repeat {repeat} --jobs {jobs}: {r['wall']:.1f} s wall, {r['cpu']:.1f} CPU-s, "
                  f"{r['per_hour']:.0f} trials/hour", flush=True)  # fmt: skip
        ratios.append(results[2][-1]["per_hour"] / results[1][-1]["per_hour"])
    print(f"\n{args.trials} trials per sweep, {os.cpu_count()} cores, 1 thread per trial")
    print("| --jobs | wall s (median) | trials/hour | CPU-s |")
    print("|---|---|---|---|")
    for jobs, runs in results.items():
        wall = statistics.median(r["wall"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        print(f"| {jobs} | {wall:.1f} | {args.trials * 3600 / wall:.0f} | {cpu:.1f} |")
    print(f"\n--jobs 2 / --jobs 1 trials per hour: median {statistics.median(ratios):.2f}x "
          f"(each repeat: {', '.join(f'{r:.2f}' for r in ratios)})")  # fmt: skip


if __name__ == "__main__":
    main()
