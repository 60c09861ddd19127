"""Wall time of each default run (`zoo run NAME` on the embedded data), the whole command as a
user types it, in an empty folder; medians of `--repeats`, taking turns between checkouts.

    python benchmarks/default_runs.py                         # this checkout
    python benchmarks/default_runs.py --checkouts . ../old    # side by side (PYTHONPATH each)

Results in docs/results/defaults.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = [
    ["elman-rnn"],
    ["elman-rnn", "--dataset", "char-pairs"],
    ["elman-rnn", "--dataset", "text"],
    ["gru-regressor"],
    ["lstm-tagger"],
    ["rnn-seq2seq"],
]


def wall_time(command: list[str], checkout: Path) -> float:
    """Seconds for `zoo run COMMAND` from `checkout`, in a fresh folder that is also ZOO_HOME."""
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "PYTHONPATH": str(checkout), "ZOO_HOME": folder}
        start = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-m", "zoo", "run", *command],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - start
    if run.returncode != 0:
        raise SystemExit(f"zoo run {' '.join(command)} failed:\n{run.stderr[-2000:]}")
    return round(seconds, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkouts", nargs="+", type=Path, default=[Path(".")])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    checkouts = [c.resolve() for c in args.checkouts]
    for checkout in checkouts:  # else PYTHONPATH misses and the installed zoo is timed
        if not (checkout / "zoo" / "__init__.py").is_file():
            parser.error(f"--checkouts: {checkout}: not a zoo checkout (no zoo/__init__.py)")
    if args.repeats < 1:
        parser.error("--repeats: expected a whole number of at least 1")
    results: dict[str, dict[str, list[float]]] = {}
    for command in COMMANDS:
        row = results.setdefault(" ".join(command), {})
        for _ in range(args.repeats):
            for checkout in checkouts:
                row.setdefault(str(checkout), []).append(wall_time(command, checkout))
        medians = {k: statistics.median(v) for k, v in row.items()}
        print(f"zoo run {' '.join(command)}: {json.dumps(medians)}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
