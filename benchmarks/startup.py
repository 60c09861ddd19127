"""Start-up time of the light commands against a bare interpreter, side by side.

    python benchmarks/startup.py [--repeat 15]

Runs `python -c pass`, `zoo --help`, `zoo list`, `zoo plugins` and, for scale,
`python -c "import torch"`, interleaved round-robin so machine noise hits all alike, and prints
the median wall time of each and its ratio to `python -c pass`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    zoo = shutil.which("zoo") or str(Path(sys.executable).parent / "zoo")
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "zoo --help": [zoo, "--help"],
        "zoo list": [zoo, "list"],
        "zoo plugins": [zoo, "plugins"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeat):
        for name, cmd in commands.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["python -c pass"])
    print(f"{'command':28s} {'median s':>9s} {'x python':>9s}   (n={args.repeat})")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:28s} {median:9.3f} {median / base:9.1f}")


if __name__ == "__main__":
    main()
