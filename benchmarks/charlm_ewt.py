"""Character language models on UD English EWT: Elman, GRU and LSTM cells at equal size.

    python benchmarks/charlm_ewt.py --cell elman   # one row, ~10 min on a 2-core machine
    python benchmarks/charlm_ewt.py                 # all three, in turn

Trains `elman-rnn` on the `text` dataset: the `# text = ` sentence lines of
../shared/data/ud-english-ewt/en_ewt-ud-train.conllu joined by newlines (1,008,093
characters), validated on those of en_ewt-ud-dev.conllu (125,372 characters; the best epoch
is kept) and tested on those of en_ewt-ud-test.conllu. One layer,
one-hot input over the 111 symbols; hidden sizes chosen so that each model has about 406,000
parameters (Elman 535, GRU 300, LSTM 256 units). Each row is exactly the command

    zoo run elman-rnn --dataset text --data EWT/en_ewt-ud-train.conllu \\
        --dev EWT/en_ewt-ud-dev.conllu --test EWT/en_ewt-ud-test.conllu --set cell=CELL \\
        --set hidden_size=H --batch-size 64 --epochs E --set bptt=64 --lr LR \\
        --set lr_schedule=cosine

(LR: Elman 0.002, GRU 0.002, LSTM 0.01; E: 10)

run through the Python API, and prints: cell, parameters, learning rate, validation bits per
character of the best epoch, test bits per character, epochs, wall seconds and CPU seconds of
the training, torch threads; then one JSON line per row. The model files are written to
--out-dir (default /tmp). Run nothing else meanwhile when timing. The figures:
docs/results/char-lm.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import zoo

EWT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ud-english-ewt"
HIDDEN = {"elman": 535, "gru": 300, "lstm": 256}
# Learning rates, the best on dev of those tried: 300-step probes put the Elman net's at 0.002
# (0.005 and 0.01 learn worse) and the LSTM's at 0.01; full runs gave the GRU 2.514 dev bpc at
# 0.002 and 2.590 at 0.005, and the LSTM 2.853 at 0.002 and 2.357 at 0.01.
LR = {"elman": 0.002, "gru": 0.002, "lstm": 0.01}
RECIPE = {"batch_size": 64, "bptt": 64, "lr_schedule": "cosine", "grad_clip": 1.0, "threads": 1}


def command(cell: str, epochs: int) -> str:
    return (
        "zoo run elman-rnn --dataset text --data ../shared/data/ud-english-ewt/en_ewt-ud-train.conllu "
        "--dev ../shared/data/ud-english-ewt/en_ewt-ud-dev.conllu "
        "--test ../shared/data/ud-english-ewt/en_ewt-ud-test.conllu "
        f"--set cell={cell} --set hidden_size={HIDDEN[cell]} --batch-size 64 --epochs {epochs} "
        f"--set bptt=64 --lr {LR[cell]} --set lr_schedule=cosine"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", choices=[*HIDDEN, "all"], default="all")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--impl", choices=["torch", "cells"], default="torch")
    parser.add_argument("--out-dir", default="/tmp")
    args = parser.parse_args()
    if not EWT.is_dir():
        raise SystemExit(f"{EWT} is absent: this benchmark needs ../shared/data")
    cells = list(HIDDEN) if args.cell == "all" else [args.cell]
    rows = []
    for cell in cells:
        print(f"$ {command(cell, args.epochs)}", flush=True)
        result = zoo.run(
            "elman-rnn",
            "text",
            EWT / "en_ewt-ud-train.conllu",
            dev=EWT / "en_ewt-ud-dev.conllu",
            test=EWT / "en_ewt-ud-test.conllu",
            out=Path(args.out_dir) / f"charlm-ewt-{cell}.safetensors",
            progress=True,
            cell=cell,
            hidden_size=HIDDEN[cell],
            epochs=args.epochs,
            impl=args.impl,
            lr=LR[cell],
            **RECIPE,
        )
        training = result.metrics["training"]
        row = {
            "cell": cell,
            "impl": args.impl,
            "parameters": result.model.num_parameters(),
            "lr": LR[cell],
            "valid_bpc": round(result.metrics["valid"]["bpc"], 4),
            "test_bpc": round(result.metrics["test"]["bpc"], 4),
            "valid_accuracy": round(result.metrics["valid"]["accuracy"], 4),
            "best_step": training["best_validation"].get("step"),
            "epochs": training["epochs"],
            "steps": training["steps"],
            "seconds": training["seconds"],
            "cpu_seconds": training["cpu_seconds"],
            "threads": training["threads"],
            "sample": result.model.predict("The ", length=80, temperature=0.5, seed=0)[0]["text"],
        }
        rows.append(row)
        print(
            f"{cell:6s} {row['parameters']:>9,} params  lr {row['lr']}  valid bpc "
            f"{row['valid_bpc']:.3f}  test bpc {row['test_bpc']:.3f}  "
            f"{row['epochs']} epochs  {row['seconds']:.0f} s  {row['cpu_seconds']:.0f} CPU-s  "
            f"{row['threads']} thread(s)",
            flush=True,
        )
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    main()
