"""Data of any size (issue 29), CSV series: peak memory of the streamed `csv` dataset on large
minute-level files, and its training speed mapped against the file read whole.

    python benchmarks/data_scale_csv.py [--sizes 100M 1G] [--work /tmp/zoo-scale-csv]
                                        [--data ../shared/data] [--steps 300] [--repeats 3]
                                        [--parts rss speed] [--out results.json]

The files: ETTh1's header, then its 17,420 rows over and over (each row's numbers as in the
file) with minute timestamps from 2016-07-01 00:00 counting up by one minute a row, until the
size is reached: "years of minute-level sensor CSV" (1 GB is about 6.9 million rows, 13 years).

- rss:   for each size, `zoo run gru-regressor --dataset csv --data FILE --steps 20 --threads 1
         --set split=0.998,0.001,0.001` under `/usr/bin/time -f %M`: cold (an empty cache: the
         run streams the file and prepares it), warm (mapped), and for the smallest size also
         in memory (`--no-cache` with ZOO_CSV_STREAM_ABOVE above the file's size: the whole file
         read at once, today's path). The held-out parts are 0.1% each so that scoring 30% of
         the windows (hours on this machine) does not swamp the figures of reading.
- speed: steps per second of the same command with `--steps N`, mapped (warm cache) against
         in memory, on the smallest size; the trainer's own time (`training.seconds`, and
         per CPU-second `training.cpu_seconds`, less sensitive to a loaded machine), median
         of `--repeats` runs taking turns.

Generated files are deleted at the end. The figures: docs/results/data.md ("CSV series").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_scale import REPO, ZOO, size_of, timed  # the same runner and sizes

IN_MEMORY = {"ZOO_CSV_STREAM_ABOVE": str(10**15), "ZOO_NO_CACHE": "1"}


def generate(path: Path, size: int, ett: Path) -> Path:
    """`size` bytes of minute-level rows: ETTh1's numbers repeated, timestamps a minute apart."""
    if path.exists() and path.stat().st_size >= size:
        return path
    header, *rows = ett.read_text(encoding="utf-8").splitlines()
    numbers = [row.split(",", 1)[1] for row in rows]
    minute, t = timedelta(minutes=1), datetime(2016, 7, 1)
    written, i = 0, 0
    with open(path, "w", encoding="utf-8") as f:
        f.write(header + "\n")
        while written < size:
            block = []
            for _ in range(10_000):
                block.append(f"{t:%Y-%m-%d %H:%M:%S},{numbers[i % len(numbers)]}\n")
                t, i = t + minute, i + 1
            text = "".join(block)
            f.write(text)
            written += len(text)
    return path


def command(path: Path, steps: int, out: Path) -> list[str]:
    return [
        *ZOO, "run", "gru-regressor", "--dataset", "csv", "--data", str(path),
        "--steps", str(steps), "--threads", "1", "--json", "-q", "--no-log",
        "--out", str(out), "--set", "split=0.998,0.001,0.001",
    ]  # fmt: skip


def rss_part(args: argparse.Namespace, work: Path, cache: Path) -> dict[str, Any]:
    rows = {}
    for size_text in args.sizes:
        path = generate(work / f"series-{size_text}.csv", size_of(size_text), args.ett)
        env = {"ZOO_CACHE_DIR": str(cache)}
        shutil.rmtree(cache, ignore_errors=True)
        row: dict[str, Any] = {"bytes": path.stat().st_size}
        row["cold"] = timed(command(path, 20, work / "m.safetensors"), env)
        row["warm"] = timed(command(path, 20, work / "m.safetensors"), env)
        if size_text == args.sizes[0]:
            row["in_memory"] = timed(command(path, 20, work / "m.safetensors"), IN_MEMORY)
        rows[size_text] = row
        print(size_text, json.dumps(row), flush=True)
        shutil.rmtree(cache, ignore_errors=True)
        if size_text != args.sizes[0]:
            path.unlink()
    return rows


def speed_part(args: argparse.Namespace, work: Path, cache: Path) -> dict[str, Any]:
    path = generate(work / f"series-{args.sizes[0]}.csv", size_of(args.sizes[0]), args.ett)
    env = {"ZOO_CACHE_DIR": str(cache)}
    names = ("mapped", "in_memory")
    out: dict[str, list[float]] = {f"{n}{u}": [] for n in names for u in ("", "_per_cpu_s")}
    timed(command(path, 1, work / "m.safetensors"), env)  # prepare
    for _ in range(args.repeats):
        for name, extra_env in zip(names, (env, IN_MEMORY)):
            r = timed(command(path, args.steps, work / "m.safetensors"), extra_env)["training"]
            out[name].append(round(args.steps / r["seconds"], 2))
            out[f"{name}_per_cpu_s"].append(round(args.steps / r["cpu_seconds"], 2))
    result: dict[str, Any] = {k: round(statistics.median(v), 2) for k, v in out.items()}
    result["ratio"] = round(result["mapped"] / result["in_memory"], 3)
    result["ratio_per_cpu_s"] = round(result["mapped_per_cpu_s"] / result["in_memory_per_cpu_s"], 3)
    result["runs"] = out
    print("speed", json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["100M", "1G"])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "zoo-csv")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts", nargs="+", default=["rss", "speed"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.ett = args.data / "ett" / "ETTh1.csv"
    args.work.mkdir(parents=True, exist_ok=True)
    cache = args.work / "cache"
    parts = {"rss": rss_part, "speed": speed_part}
    results: dict[str, Any] = {"load": os.getloadavg(), "cpus": os.cpu_count()}
    try:
        for name in args.parts:
            results[name] = parts[name](args, args.work, cache)
    finally:
        shutil.rmtree(args.work, ignore_errors=True)
    results["load_after"] = os.getloadavg()
    text = json.dumps(results, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
