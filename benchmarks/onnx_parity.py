"""Parity of exported models on real data: the torch-free runtime against zoo, answer by answer.

    python benchmarks/onnx_parity.py [--data ../shared/data] [--tagger EWT.safetensors]
                                     [--seq2seq SCAN.safetensors] [--forecaster ETTH1.safetensors]
                                     [--out /tmp/onnx_parity.json] [--quantize int8]

Each model file given (trained by benchmarks/tagger_ewt.py, seq2seq_scan.py --split simple,
forecast_etth1.py) is exported with `zoo export`, then:

- tagger: every sentence of the EWT test file tagged by zoo and by the runtime; the goal is
  every tag identical, and the accuracy of each against the gold UPOS tags;
- seq2seq: every SCAN simple test command decoded greedily by both; the goal is every output
  identical, and each one's exact match against the gold actions;
- forecaster: the ETTh1 test MSE (on the model's scale) from `zoo eval` and from the runtime's
  forecasts of the same windows; the goal is a difference below 1e-6.

With --quantize int8 the exports are int8 (`zoo export --quantize int8`): the same figures then
compare int8 with torch float32 (docs/results/serve.md).

Prints one JSON document (also written to --out). The figures: docs/results/onnx.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

import zoo
from zoo.features.export import export_onnx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "runtime"))
import zoo_runtime  # noqa: E402


def conllu_sentences(path: Path) -> list[tuple[list[str], list[str]]]:
    """(words, UPOS tags) of each sentence, multi-word token lines and empty nodes skipped."""
    sentences, words, tags = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if words:
                sentences.append((words, tags))
            words, tags = [], []
        elif not line.startswith("#"):
            cols = line.split("\t")
            if cols[0].isdigit():
                words.append(cols[1])
                tags.append(cols[3])
    if words:
        sentences.append((words, tags))
    return sentences


def tagger(path: Path, onnx: Path, data: Path) -> dict[str, Any]:
    model, runtime = zoo.load(path), zoo_runtime.load(onnx)
    gold = conllu_sentences(data / "ud-english-ewt" / "en_ewt-ud-test.conllu")
    sentences = [words for words, _ in gold]
    with torch.no_grad():
        ours = model.module.tag(sentences, 256)
    theirs = runtime.tag(sentences, 256)
    words = sum(len(s) for s in sentences)
    differ = sum(a != b for x, y in zip(ours, theirs) for a, b in zip(x, y))
    right = [
        sum(p == g for t, (_, tags) in zip(out, gold) for p, g in zip(t, tags))
        for out in (ours, theirs)
    ]
    return {
        "sentences": len(sentences),
        "words": words,
        "tags_that_differ": differ,
        "accuracy_zoo": right[0] / words,
        "accuracy_runtime": right[1] / words,
    }


def seq2seq(path: Path, onnx: Path, data: Path) -> dict[str, Any]:
    text = (data / "scan" / "tasks_test_simple.txt").read_text()
    pairs = re.findall(r"IN: (.*?) OUT: (.*)", text)
    commands = [c for c, _ in pairs]
    ours = [p["output"] for p in zoo.predict(path, commands)]
    theirs = [p["output"] for p in zoo_runtime.load(onnx).predict(commands)]
    return {
        "sequences": len(commands),
        "outputs_that_differ": sum(a != b for a, b in zip(ours, theirs)),
        "exact_match_zoo": sum(a == g for a, (_, g) in zip(ours, pairs)) / len(pairs),
        "exact_match_runtime": sum(b == g for b, (_, g) in zip(theirs, pairs)) / len(pairs),
    }


def forecaster(path: Path, onnx: Path, data: Path) -> dict[str, Any]:
    csv = data / "ett" / "ETTh1.csv"
    model, runtime = zoo.load(path), zoo_runtime.load(onnx)
    zoo_mse = zoo.evaluate(model, str(csv))["mse"]
    state = model.state
    mean, std = np.array(state["mean"], np.float32), np.array(state["std"], np.float32)
    index = state.get("target_index") or list(range(int(state["output_size"])))
    loaded = model.evaluation_data(str(csv))
    se, n = 0.0, 0
    for batch in loaded.batches("test", 256):
        raw = batch["x"].numpy() * std + mean  # the windows in the data's own units
        (forecast,) = runtime.run("model", {"window": raw.astype(np.float32)})
        scaled = (forecast - mean[index]) / std[index]
        se += float(((scaled.astype(np.float64) - batch["y"].numpy()) ** 2).sum())
        n += scaled.size
    return {
        "mse_zoo": zoo_mse,
        "mse_runtime": se / n,
        "difference": abs(zoo_mse - se / n),
        "values": n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--tagger")
    ap.add_argument("--seq2seq")
    ap.add_argument("--forecaster")
    ap.add_argument("--out", default="/tmp/onnx_parity.json")
    ap.add_argument("--quantize", choices=["int8"], help="export int8 (zoo export --quantize)")
    opts = ap.parse_args()
    torch.set_num_threads(1)
    doc: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key in ("tagger", "seq2seq", "forecaster"):
            given = getattr(opts, key)
            if given is None:
                continue
            onnx = Path(tmp) / f"{key}.onnx"
            export_onnx(zoo.load(given), onnx, quantize=opts.quantize)
            doc[key] = {"model": given, **globals()[key](Path(given), onnx, Path(opts.data))}
            print(key, json.dumps(doc[key]), file=sys.stderr)
    text = json.dumps(doc, indent=2)
    Path(opts.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
