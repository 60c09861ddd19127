"""onnxruntime (the torch-free runtime) against torch eager (zoo), on one thread, side by side.

    python benchmarks/onnx_speed.py [--data ../shared/data] [--tagger FILE] [--forecaster FILE]
                                    [--seq2seq FILE] [--repeats 5] [--out /tmp/onnx_speed.json]

For the tagger and the forecaster: latency of one input end to end (`zoo.predict` against
`zoo_runtime`'s `predict`: raw text or numbers in, the answer out) at batch 1, and throughput
of the graph alone at batch 256 (the network's forward under torch.no_grad against
onnxruntime's session on the same arrays). For the seq2seq model: greedy decoding of SCAN
commands, sequences per second end to end, 256 a batch. Also the installed size of the
runtime's environment (numpy, onnxruntime and what they require) against zoo's (torch, ...).

Models: the files given, else untrained models of the real-data recipes' sizes built from
the data (EWT for the tagger, ETTh1 preset for the forecaster, SCAN simple for seq2seq; an
untrained decoder writes to its length limit, so pass a trained --seq2seq for SCAN figures).
The two sides alternate --repeats times, taking turns at going first; medians are reported.
Run nothing else meanwhile. The figures: docs/results/onnx.md.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import zoo
from zoo.features.export import export_onnx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "runtime"))
import zoo_runtime  # noqa: E402


def seconds(fn: Callable[[], Any], repeat: int) -> float:
    """Median wall seconds of one call of `fn`."""
    gc.collect()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def side_by_side(torch_fn: Callable, ort_fn: Callable, repeats: int, inner: int) -> dict:
    """Median seconds per call of each side, alternating which goes first."""
    a, b = [], []
    for r in range(repeats):
        pair = [(a, torch_fn), (b, ort_fn)]
        for out, fn in pair if r % 2 == 0 else pair[::-1]:
            out.append(seconds(fn, inner))
    t, o = statistics.median(a), statistics.median(b)
    return {"torch_s": t, "onnxruntime_s": o, "speedup": t / o}


def models(opts: argparse.Namespace, folder: Path) -> dict[str, Path]:
    data = Path(opts.data)
    recipes = {
        "tagger": ("lstm-tagger", "conllu", data / "ud-english-ewt", {}),
        "forecaster": (
            "gru-regressor",
            "csv",
            data / "ett" / "ETTh1.csv",
            {"preset": "ett-h1-ot", "horizon": 96},
        ),
        "seq2seq": ("rnn-seq2seq", "scan", data / "scan" / "tasks_train_simple.txt", {}),
    }
    out = {}
    for key, (name, dataset, path, settings) in recipes.items():
        given = getattr(opts, key)
        if given is None:
            given = folder / f"{key}.safetensors"
            zoo.create(name, dataset, str(path), **settings).save(given)
        out[key] = Path(given)
    return out


def tagger_figures(path: Path, onnx: Path, opts: argparse.Namespace) -> dict:
    model, runtime = zoo.load(path), zoo_runtime.load(onnx)
    sentences = [line for line in _ewt_sentences(Path(opts.data)) if line][:256]
    one = sorted(sentences, key=len)[len(sentences) // 2]
    latency = side_by_side(
        lambda: zoo.predict(model, [one]), lambda: runtime.predict([one]), opts.repeats, 20
    )
    feeds = runtime.feeds([s.split() for s in sentences])
    graph = model.module.export_spec().graphs[0].module.eval()
    tensors = [torch.from_numpy(feeds[k]) for k in runtime.graphs["model"]["inputs"]]
    throughput = side_by_side(
        lambda: _no_grad(graph, tensors), lambda: runtime.run("model", feeds), opts.repeats, 3
    )
    return {"batch_1_latency": latency, "batch_256_graph": _per_second(throughput, len(sentences))}


def forecaster_figures(path: Path, onnx: Path, opts: argparse.Namespace) -> dict:
    model, runtime = zoo.load(path), zoo_runtime.load(onnx)
    length = runtime.length
    rng = np.random.default_rng(0)
    window = " ".join(f"{v:.3f}" for v in rng.normal(size=length))
    latency = side_by_side(
        lambda: zoo.predict(model, [window]), lambda: runtime.predict([window]), opts.repeats, 20
    )
    batch = rng.normal(size=(256, length, runtime.features)).astype(np.float32)
    graph = model.module.export_spec().graphs[0].module.eval()
    x = torch.from_numpy(batch)
    throughput = side_by_side(
        lambda: _no_grad(graph, [x]),
        lambda: runtime.run("model", {"window": batch}),
        opts.repeats,
        3,
    )
    return {"batch_1_latency": latency, "batch_256_graph": _per_second(throughput, 256)}


def seq2seq_figures(path: Path, onnx: Path, opts: argparse.Namespace) -> dict:
    model, runtime = zoo.load(path), zoo_runtime.load(onnx)
    test = Path(opts.data) / "scan" / "tasks_test_simple.txt"
    commands = [m.group(1) for m in re.finditer(r"IN: (.*?) OUT:", test.read_text())][:256]
    greedy = side_by_side(
        lambda: zoo.predict(model, commands, batch_size=256),
        lambda: runtime.predict(commands, batch_size=256),
        opts.repeats,
        1,
    )
    return {"greedy_256": _per_second(greedy, len(commands))}


def _no_grad(module: torch.nn.Module, tensors: list[torch.Tensor]) -> Any:
    with torch.no_grad():
        return module(*tensors)


def _per_second(times: dict, count: int) -> dict:
    return {
        **times,
        "torch_per_s": count / times["torch_s"],
        "onnxruntime_per_s": count / times["onnxruntime_s"],
    }


def _ewt_sentences(data: Path) -> list[str]:
    test = data / "ud-english-ewt" / "en_ewt-ud-test.conllu"
    sentences, words = [], []
    for line in test.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if words:
                sentences.append(" ".join(words))
            words = []
        elif not line.startswith("#"):
            cols = line.split("\t")
            if cols[0].isdigit():
                words.append(cols[1])
    return sentences


def installed_mb(*names: str) -> float:
    """Installed size of distributions and everything they require (recursively), in MB."""
    seen: set[str] = set()
    todo = list(names)
    total = 0
    while todo:
        name = re.split(r"[ ;<>=!~\[(]", todo.pop(), maxsplit=1)[0].lower().replace("_", "-")
        if not name or name in seen:
            continue
        seen.add(name)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        total += sum(f.size or 0 for f in dist.files or [])
        todo += [r for r in dist.requires or [] if "extra ==" not in r]
    return round(total / 1e6, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--tagger")
    ap.add_argument("--forecaster")
    ap.add_argument("--seq2seq")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="/tmp/onnx_speed.json")
    opts = ap.parse_args()
    torch.set_num_threads(1)
    doc: dict[str, Any] = {"torch": torch.__version__, "threads": 1}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for key, path in models(opts, folder).items():
            onnx = folder / f"{key}.onnx"
            export_onnx(zoo.load(path), onnx)
            figures = globals()[f"{key}_figures"](path, onnx, opts)
            doc[key] = {"model": str(path), **figures}
            print(key, json.dumps(figures), file=sys.stderr)
    doc["installed_mb"] = {
        "runtime (numpy, onnxruntime)": installed_mb("onnxruntime", "numpy"),
        "zoo (torch, ...)": installed_mb("rnn-zoo"),
    }
    text = json.dumps(doc, indent=2)
    Path(opts.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
