"""One LSTM layer through the kernels a served tagger can use, at the EWT tagger's sizes:
why the torch backend answers one sentence slower than the ONNX runtime.

    python benchmarks/lstm_layer_speed.py [--steps 1,12,28] [--batches 1,12] [--calls 1000]

For one layer and direction (input 200, hidden 240, as the recipe's first BiLSTM layer), one
thread, microseconds per call (median), each way taking its turn call by call so that a busy
machine weighs on each alike:
- `torch oneDNN`: what `zoo serve` runs (`zoo.toolkit.padded`: oneDNN's LSTM with its weights
  packed once);
- `torch native`: torch's own CPU kernel (oneDNN off), the path without that packing;
- `onnxruntime`: the same layer exported to ONNX, as `zoo-runtime serve` runs it;
- `torch oneDNN, 2 directions`: both directions of the layer one after the other, and
- `... in 2 threads`: the reverse direction in a second thread meanwhile (torch releases
  Python's lock inside the kernel): whether a sentence's two directions gain from the idle
  core of a one-client server.
The per-step and fixed costs follow from the steps given (docs/results/serve.md).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

INPUT, HIDDEN = 200, 240


def whole_numbers(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"expected whole numbers from 1, comma-separated: {text!r}"
        )
    return values


def whole_number(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1: {text!r}")
    return int(text)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=whole_numbers, default=[1, 12, 28], help="time steps")
    p.add_argument("--batches", type=whole_numbers, default=[1, 12], help="rows")
    p.add_argument("--calls", type=whole_number, default=1000, help="per way")
    return p.parse_args()


def onnx_layer(layer: torch.nn.LSTM) -> Callable[[np.ndarray], object]:
    """The layer as an onnxruntime session on one thread: a function of a [T, B, in] array."""
    import onnxruntime as ort

    buffer = io.BytesIO()
    example = torch.zeros(2, 1, INPUT)
    axes = {"x": {0: "steps", 1: "rows"}}
    with warnings.catch_warnings():  # the legacy exporter's notices, not this benchmark's
        warnings.simplefilter("ignore")
        torch.onnx.export(
            layer, (example,), buffer, input_names=["x"], dynamic_axes=axes, dynamo=False
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"x": x})


def ways(steps: int, rows: int, helper: ThreadPoolExecutor) -> dict[str, Callable[[], object]]:
    from zoo.toolkit import padded

    torch.manual_seed(0)
    one = torch.nn.LSTM(INPUT, HIDDEN, batch_first=True).eval()
    both = torch.nn.LSTM(INPUT, HIDDEN, batch_first=True, bidirectional=True).eval()
    x, lengths = torch.randn(rows, steps, INPUT), torch.full((rows,), steps)
    runtime, x_onnx = onnx_layer(one), x.transpose(0, 1).contiguous().numpy()
    packed = padded._packed_weights(both)
    names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    params = {s: [getattr(both, f"{n}_l0{s}") for n in names] for s in ("", "_reverse")}
    zero = torch.zeros(1, rows, HIDDEN)

    def direction(suffix: str) -> torch.Tensor:
        with torch.inference_mode():  # per thread: the helper thread's too
            inp = x.flip(1) if suffix else x
            return padded._lstm_packed(
                inp, (zero, zero), packed[f"l0{suffix}"], params[suffix], HIDDEN
            )

    def native() -> object:
        with torch.backends.mkldnn.flags(enabled=False), torch.inference_mode():
            return one(x)

    def threaded() -> object:
        reverse = helper.submit(direction, "_reverse")
        return direction(""), reverse.result()

    return {
        "torch oneDNN": lambda: padded.run(one, x, lengths),
        "torch native": native,
        "onnxruntime": lambda: runtime(x_onnx),
        "torch oneDNN, 2 directions": lambda: (direction(""), direction("_reverse")),
        "torch oneDNN, 2 directions in 2 threads": threaded,
    }


def measure(calls: int, steps: int, rows: int) -> dict[str, float]:
    """Median microseconds per call of each way, taking turns call by call."""
    with ThreadPoolExecutor(1) as helper:
        funcs = ways(steps, rows, helper)  # outside inference mode: the layers are trainable
        times: dict[str, list[float]] = {name: [] for name in funcs}
        with torch.inference_mode():
            for i in range(calls + 50):
                for name, f in funcs.items():
                    start = time.perf_counter()
                    f()
                    if i >= 50:  # warm-up calls not counted
                        times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1e6 for name, t in times.items()}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="TF32 acceleration")  # torch's, per flags call
    print(f"one LSTM layer, input {INPUT}, hidden {HIDDEN}, 1 thread: median us per call")
    for rows in args.batches:
        for steps in args.steps:
            result = measure(args.calls, steps, rows)
            cells = ", ".join(f"{name} {us:.0f}" for name, us in result.items())
            print(f"rows {rows}, steps {steps}: {cells}")


if __name__ == "__main__":
    main()
