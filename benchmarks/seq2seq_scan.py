"""SCAN exact-match accuracy of `rnn-seq2seq`, over seeds, with the plain commands a user types.

For each seed this runs, as subprocesses,

    zoo run rnn-seq2seq --dataset scan --data DATA/tasks_train_SPLIT.txt --seed S --out M
    zoo eval M --data DATA/tasks_test_SPLIT.txt

and prints one line per seed (test exact match, token accuracy, training CPU-seconds and wall
seconds, threads), then the mean, standard deviation, median, minimum and maximum over seeds. Extra
`--set key=value` options go to `zoo run` (to try other recipes); without them the run uses
the scan dataset's defaults. Each seed takes 5-9 minutes of training on one core of a 2-core
machine; run nothing else meanwhile when timing:

    python benchmarks/seq2seq_scan.py --split simple --seeds 0 1 2 3 4
    python benchmarks/seq2seq_scan.py --split length --seeds 0 --set attention=bahdanau
    python benchmarks/seq2seq_scan.py --split length --seeds 0 1 2 3 4 \
        --set cell=gru --set attention=bahdanau --set hidden_size=64 --set dropout=0.5 \
        --set concat_pairs=2.0 --set steps=10640 --set valid_min_target_length=20 \
        --set eval_every=400

Lake and Baroni (ICML 2018) report the mean of 5 seeds: 99.8% (simple), 20.8% (length),
1.2% (add-jump). With a validation split (`valid_min_target_length`) each seed's line also
gives its best validation exact match. `--json PATH` also writes every result as JSON lines.
The figures: docs/results/scan.md.
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
DATA = REPO.parent / "shared" / "data" / "scan"
SPLITS = {"simple": "simple", "length": "length", "addjump": "addprim_jump"}


def zoo(*args: str) -> dict:
    exe = Path(sys.executable).parent / "zoo"
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "zoo"]
    p = subprocess.run([*command, *args, "--json"], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"zoo {' '.join(args)} failed:\n{p.stderr}")
    return json.loads(p.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=sorted(SPLITS), default="simple")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder of SCAN's task files")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "scan", help="model folder")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="K=V")
    parser.add_argument("--json", type=Path, help="append results as JSON lines to this file")
    args = parser.parse_args()

    name = SPLITS[args.split]
    train, test = args.data / f"tasks_train_{name}.txt", args.data / f"tasks_test_{name}.txt"
    args.out.mkdir(parents=True, exist_ok=True)
    extra = [x for s in args.settings for x in ("--set", s)]
    tag = "-".join(s.replace("=", "") for s in args.settings) or "default"
    print(f"SCAN {args.split}: {train.name} -> {test.name}; settings: {tag}", flush=True)
    rows = []
    for seed in args.seeds:
        model = args.out / f"scan-{args.split}-{tag}-seed{seed}.safetensors"
        wall = time.perf_counter()
        run = zoo("run", "rnn-seq2seq", "--dataset", "scan", "--data", str(train),
                  "--seed", str(seed), "--out", str(model), "-q", *extra)  # fmt: skip
        result = zoo("eval", str(model), "--data", str(test))
        training = run["training"]
        row = {
            "split": args.split,
            "seed": seed,
            "settings": args.settings,
            "exact_match": result["metrics"]["exact_match"],
            "token_accuracy": result["metrics"]["token_accuracy"],
            "valid_exact_match": run["metrics"].get("valid", {}).get("exact_match"),
            "train_cpu_seconds": training["cpu_seconds"],
            "train_seconds": training["seconds"],
            "steps": training["steps"],
            "threads": training["threads"],
            "eval_seconds": result["seconds"],
            "command_seconds": round(time.perf_counter() - wall, 1),
            "model": str(model),
        }
        rows.append(row)
        valid = row["valid_exact_match"]
        print(
            f"seed {seed}: "
            + (f"valid {100 * valid:.2f}%, " if valid is not None else "")
            + f"test exact match {100 * row['exact_match']:.2f}%  token accuracy "
            f"{100 * row['token_accuracy']:.2f}%  trained {row['steps']} steps in "
            f"{row['train_cpu_seconds']:.0f} CPU-s / {row['train_seconds']:.0f} s wall, "
            f"{row['threads']} thread(s); eval {row['eval_seconds']:.1f} s",
            flush=True,
        )
        if args.json:
            with open(args.json, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
    scores = [100 * r["exact_match"] for r in rows]
    cpu = [r["train_cpu_seconds"] for r in rows]
    spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
    print(
        f"{args.split}: exact match mean {statistics.mean(scores):.2f}% (sd {spread:.2f}, "
        f"median {statistics.median(scores):.2f}, min {min(scores):.2f}, max {max(scores):.2f}) over {len(rows)} seed(s); training "
        f"CPU-s median {statistics.median(cpu):.0f} (max {max(cpu):.0f})"
    )


if __name__ == "__main__":
    main()
