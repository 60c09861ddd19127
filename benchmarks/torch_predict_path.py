"""Where `zoo serve`'s torch backend spends a request, before and after its speed-ups, beside
the ONNX runtime on the export of the same model: CPU milliseconds per call for one EWT dev
sentence and for batches of 32 (the 64-client case: two workers), the three ways alternating
call by call in one process, so that a busy machine weighs on each alike.

    python benchmarks/torch_predict_path.py --tagger ewt.safetensors [--data ../shared/data]
        [--calls 400] [--batches 25] [--profile]

"before" is the same code with the two savings undone for the call: the LSTM weights reordered
by oneDNN at every call (`zoo.toolkit.padded` packing off) and the tagger's vocabulary tables
built again, through `Model.predict` (options resolved, eval mode set, inputs checked at every
call); "after" is `TorchBackend.predict`. The answers of both are checked equal first.
`--profile` prints cProfile's top functions for "after", one sentence at a time.
Results: docs/serving.md ("Where a torch request's time goes").
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "runtime"))  # this checkout's runtime


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tagger", required=True, help="the EWT tagger recipe's model")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--calls", type=int, default=400, help="one-sentence calls per way")
    p.add_argument("--batches", type=int, default=25, help="calls of 32 sentences per way")
    p.add_argument("--profile", action="store_true")
    return p.parse_args()


def sentences(data: Path) -> list[str]:
    conllu = data / "ud-english-ewt" / "en_ewt-ud-dev.conllu"
    lines = conllu.read_text(encoding="utf-8").splitlines()
    return [line[len("# text = ") :].strip() for line in lines if line.startswith("# text = ")]


def ways(model_path: str, folder: Path) -> dict[str, Callable[[list[str]], Any]]:
    """before, after and the runtime: each a function of a list of sentences."""
    from zoo_runtime.server.backend import OnnxBackend

    import zoo
    from zoo.features.export import export_onnx
    from zoo.features.serve import backends
    from zoo.toolkit import padded

    (after,) = backends([model_path])
    tagger = sys.modules[type(after.model.module).__module__]  # the plugin's model.py
    export_onnx(zoo.load(model_path), folder / "tagger.onnx")
    onnx = OnnxBackend("tagger", str(folder / "tagger.onnx"), threads=1)
    packable = padded._packable

    def before(inputs: list[str]) -> Any:
        padded._packable = lambda *args: False
        tagger._PREDICTING.clear()
        try:
            with torch.inference_mode():
                return after.model.predict(inputs, batch_size=after.group)
        finally:
            padded._packable = packable

    return {
        "before": before,
        "after": lambda inputs: after.predict(inputs, {}),
        "onnx runtime": lambda inputs: onnx.predict(inputs, {}),
    }


def measure(calls: dict[str, Callable[[list[str]], Any]], batches: list[list[str]]) -> dict:
    """CPU ms per call of each way, the ways alternating call by call."""
    for call in calls.values():
        call(batches[0])
    spent = dict.fromkeys(calls, 0.0)
    for batch in batches:
        for name, call in calls.items():
            start = time.thread_time()
            call(batch)
            spent[name] += time.thread_time() - start
    return {name: 1e3 * s / len(batches) for name, s in spent.items()}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    texts = [t for t in sentences(args.data) if t]
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as folder:
        calls = ways(args.tagger, Path(folder))
        check = rng.sample(texts, 32)
        assert calls["before"](check) == calls["after"](check), "before and after disagree"
        for size, count in ((1, args.calls), (32, args.batches)):
            ms = measure(calls, [rng.sample(texts, size) for _ in range(count)])
            print(
                f"{size} sentence(s) a call, CPU ms: "
                + ", ".join(f"{name} {v:.2f}" for name, v in ms.items())
                + f"; after/before {ms['after'] / ms['before']:.2f}"
                + f", after/onnx runtime {ms['after'] / ms['onnx runtime']:.2f}"
            )
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(lambda: [calls["after"]([t]) for t in texts[: args.calls]])
            pstats.Stats(profile).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
