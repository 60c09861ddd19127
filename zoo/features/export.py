"""Export a zoo model to ONNX, so that it runs where torch does not (see docs/export.md).

An `.onnx` file written here is self-contained: besides the graph it carries, in its
`metadata_props`, everything the model file's metadata holds (architecture, configs, the data
state with its vocabularies and normalisation, metrics; see zoo.modelfile) plus `runtime`, a
JSON object telling the torch-free runtime (the `rnn-zoo-runtime` package, module
`zoo_runtime`) how to go from raw input to the answer: which recipe (`kind`), and for each graph
its role, input and output names.

What is exported comes from the network's optional `export_spec()` method (zoo.Network): the
built-in architectures give one per task, with example inputs and the axes that vary (batch,
time). A network without it is traced as it is called by its own `predict` on an example input
(`zoo export --example`), so a third-party architecture whose forward is traceable exports with
no extra code; its runtime kind is `tensors` (raw arrays in and out).

A model with several graphs (seq2seq: an encoder and one decoder step) becomes one ONNX graph
holding them side by side: each graph's inputs and outputs keep their own names, prefixed by the
graph's role (`encoder.src`, `decoder.tokens`), and the runtime opens one session per role on
the same file, each asking only for its own outputs.

Parity is checked at export: onnxruntime runs the example inputs and its outputs must equal
torch's within `TOLERANCE`, or the export fails and says by how much.

`quantize="int8"` (`zoo export --quantize int8`) then applies onnxruntime's dynamic
quantization (int8 weights of MatMul, LSTM and Gather; activations quantized as they run) to
the checked float graph, records `runtime.quantization` and keeps every metadata key, so the
runtime and the server open the smaller file as they open the float one. Int8 cannot equal
torch within 1e-5: its check is the largest difference relative to each output's scale
(`INT8_TOLERANCE`), which catches a broken graph; accuracy is measured on real test data
(docs/results/serve.md).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.core import modelfile
from zoo.core.errors import UsageError, ZooError
from zoo.core.fileio import atomic_write, check_writable
from zoo.core.settings import predict_options
from zoo.toolkit.exportspec import ExportSpec, Graph
from zoo.training.model import Model, model_fields, reconfigure

FORMAT = "zoo.onnx"
OPSET = 17
TOLERANCE = 1e-5
QUANTIZATIONS = ("int8",)
# int8 against torch: the largest |onnx - torch| over the largest |torch| of each output.
# Rounding weights to 255 levels moves outputs by a few percent of their scale; a graph the
# quantizer broke is off by its whole scale.
INT8_TOLERANCE = 0.1
TENSORS = "tensors"  # the runtime kind of a graph zoo knows nothing about


class ExportError(ZooError):
    """A model that cannot be exported: one line naming the operation or check that failed."""


def needs_onnx(command: str = "zoo export") -> None:
    """Raise the one-line install hint when the optional packages are missing."""
    for module in ("onnx", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            raise ZooError(f"{command} needs {module}: pip install 'rnn-zoo[onnx]'") from None


def export_onnx(
    model: Model,
    out: str | os.PathLike[str],
    *,
    examples: list[str] | None = None,
    quantize: str | None = None,
) -> dict[str, Any]:
    """Write `model` as one ONNX file with its metadata; returns what was written (graphs,
    their inputs and outputs, the largest difference from torch on the example inputs).
    With `quantize="int8"` the checked float graph is quantized (module docstring)."""
    check_writable(out)
    needs_onnx()
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise UsageError(f"--quantize {quantize}: expected one of {', '.join(QUANTIZATIONS)}")
    model = _plain_torch_layers(model)
    model.module.eval()
    spec = export_spec(model, examples)
    for graph in spec.graphs:  # torch.onnx.export restores the mode it found: make it eval
        graph.module.eval()
    protos = [_to_onnx(graph, len(spec.graphs) > 1) for graph in spec.graphs]
    merged = _merge(protos, [g.role for g in spec.graphs])
    runtime = {
        "kind": spec.kind,
        "settings": spec.settings,
        "input_limit": {"unit": model.module.input_unit, "max": model.module.max_input_length},
        "graphs": {
            g.role: {
                "inputs": [_name(g, n, len(spec.graphs) > 1) for n in g.inputs],
                "outputs": [_name(g, n, len(spec.graphs) > 1) for n in g.outputs],
            }
            for g in spec.graphs
        },
    }
    _set_metadata(merged, {**model_fields(model), "runtime": runtime})
    data = merged.SerializeToString()
    difference = _parity(data, spec.graphs)
    quantized: dict[str, Any] = {}
    if quantize is not None:
        runtime["quantization"] = quantize
        float_bytes = len(data)
        data = _quantized(merged, {**model_fields(model), "runtime": runtime})
        quantized = {
            "quantization": quantize,
            "float_bytes": float_bytes,
            "int8_difference": _parity(data, spec.graphs, relative=INT8_TOLERANCE),
        }
    atomic_write(out, data)
    return {
        "out": str(out),
        "format": "onnx",
        "architecture": model.name,
        "task": model.task,
        "kind": spec.kind,
        "opset": OPSET,
        "bytes": len(data),
        "graphs": runtime["graphs"],
        "max_difference": difference,
        **quantized,
    }


def export_spec(model: Model, examples: list[str] | None) -> ExportSpec:
    """The network's own spec, or a trace of forward as its predict calls it on `examples`."""
    own = getattr(model.module, "export_spec", None)
    spec = own() if callable(own) else None
    if spec is not None:
        if not isinstance(spec, ExportSpec):
            raise ExportError(
                f"{model.label}: export_spec() returned {type(spec).__name__}, "
                "expected a zoo.export.ExportSpec"
            )
        return spec
    if not examples:
        raise UsageError(
            f"{model.name} has no export_spec(); give --example INPUT (an input its predict "
            "takes) so zoo can trace the network as predict calls it"
        )
    return traced_spec(model, examples)


def traced_spec(model: Model, examples: list[str]) -> ExportSpec:
    """An `ExportSpec` of the network's forward, with the tensors its predict passes it on
    `examples`: every axis of every input and output is taken to vary."""
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def record(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if not calls:
            calls.append((args, kwargs))

    handle = model.module.register_forward_pre_hook(record, with_kwargs=True)
    try:
        with torch.no_grad():
            model.checked.predict(examples, predict_options(model.architecture, {}))
    finally:
        handle.remove()
    if not calls:
        raise ExportError(f"{model.label}: predict never called the network's forward")
    args, kwargs = calls[0]
    if kwargs or not all(isinstance(a, torch.Tensor) for a in args):
        raise ExportError(
            f"{model.label}: forward takes more than tensors; define export_spec() "
            "(docs/export.md) to say what to export"
        )
    inputs = {f"input{i}": a for i, a in enumerate(args)}
    outputs = _forward_outputs(model.module, args)
    dynamic = {n: {k: f"{n}_{k}" for k in range(t.dim())} for n, t in inputs.items()}
    dynamic.update({n: {k: f"{n}_{k}" for k in range(d)} for n, d in outputs.items()})
    return ExportSpec(TENSORS, [Graph(model.module, inputs, list(outputs), dynamic)])


def _forward_outputs(module: nn.Module, args: tuple[Any, ...]) -> dict[str, int]:
    """Names (output0, ...) and ranks of forward's tensor outputs."""
    with torch.no_grad():
        result = module(*args)
    results = result if isinstance(result, (tuple, list)) else (result,)
    if not all(isinstance(r, torch.Tensor) for r in results):
        raise ExportError("forward returns more than tensors; define export_spec() to export it")
    return {f"output{i}": r.dim() for i, r in enumerate(results)}


def _plain_torch_layers(model: Model) -> Model:
    """zoo.cells layers step through time in Python; torch's own layers (same weights) export
    as ONNX's LSTM/GRU/RNN operators."""
    if getattr(model.config, "impl", "torch") == "torch":
        return model
    return reconfigure(model, {"impl": "torch"})


# ---------------------------------------------------------------------- graphs to ONNX
def _name(graph: Graph, name: str, prefixed: bool) -> str:
    return f"{graph.role}.{name}" if prefixed else name


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torch.onnx's deprecation and tracer warnings, and the graph its C++ side prints when an
    operator fails, say nothing a zoo user can act on (the error names the operator): both
    standard streams go to a scratch file meanwhile, at the file-descriptor level."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        for fd in saved:
            os.close(fd)


def _to_onnx(graph: Graph, prefixed: bool) -> Any:
    """An onnx.ModelProto of one graph, traced with torch.onnx's TorchScript exporter (it
    writes ONNX's own LSTM/GRU/RNN operators, which onnxruntime runs fused)."""
    import onnx

    buffer = io.BytesIO()
    names = [_name(graph, n, prefixed) for n in graph.inputs]
    outputs = [_name(graph, n, prefixed) for n in graph.outputs]
    dynamic = {_name(graph, n, prefixed): axes for n, axes in graph.dynamic.items()}
    try:
        with _quiet(), torch.no_grad():
            torch.onnx.export(
                graph.module,
                tuple(graph.inputs.values()),
                buffer,
                dynamo=False,
                input_names=names,
                output_names=outputs,
                dynamic_axes=dynamic,
                opset_version=OPSET,
                do_constant_folding=True,
            )
    except Exception as e:  # torch names the operator it could not convert
        raise ExportError(f"cannot export the {graph.role} graph to ONNX: {_first_line(e)}") from e
    return onnx.load_from_string(buffer.getvalue())


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".strip()


def _merge(protos: list[Any], roles: list[str]) -> Any:
    """One ModelProto for several graphs: an `If` on the input `graph` (the index of the graph
    to run) holds each graph as a branch, so a call runs that graph alone. Every branch gives
    every graph's outputs, the other graphs' as empty tensors; the runtime fetches its own.
    Two graphs at most (seq2seq's encoder and decoder step)."""
    if len(protos) == 1:
        return protos[0]
    if len(protos) != 2:
        raise ExportError(f"{len(protos)} graphs: zoo export joins at most two in one file")
    import onnx
    from onnx import TensorProto, helper

    outputs = [o for p in protos for o in p.graph.output]
    branches = [_branch(p, role, outputs) for p, role in zip(protos, roles)]
    nodes = [
        helper.make_node(
            "Constant",
            [],
            ["graph/zero"],
            value=helper.make_tensor("z", TensorProto.INT64, [], [0]),
        ),
        helper.make_node("Equal", ["graph", "graph/zero"], ["graph/first"]),
        helper.make_node(
            "If",
            ["graph/first"],
            [o.name for o in outputs],
            then_branch=branches[0],
            else_branch=branches[1],
        ),
    ]
    inputs = [helper.make_tensor_value_info("graph", TensorProto.INT64, [])]
    inputs += [i for p in protos for i in p.graph.input]
    declared = [_declared(o.name, o) for o in outputs]
    graph = helper.make_graph(nodes, "zoo", inputs, declared)
    merged = helper.make_model(graph, opset_imports=list(protos[0].opset_import))
    merged.ir_version = protos[0].ir_version
    onnx.checker.check_model(merged)
    return merged


def _branch(proto: Any, role: str, outputs: list[Any]) -> Any:
    """One graph as an `If` branch: no inputs of its own (it reads the outer graph's), its
    internal names prefixed by its role, and an empty tensor for each other graph's output."""
    from onnx import helper, numpy_helper

    graph = proto.graph
    keep = {v.name for v in graph.input}
    own = {v.name for v in graph.output}

    def rename(name: str) -> str:
        return name if not name or name in keep else f"{role}/{name}"

    _rename_nodes(graph.node, rename)
    for tensor in graph.initializer:
        tensor.name = rename(tensor.name)
    nodes = list(graph.node)
    results = []
    for out in outputs:
        elem = out.type.tensor_type.elem_type
        if out.name in own:
            results.append(_declared(rename(out.name), out))
            continue
        rank = len(out.type.tensor_type.shape.dim)
        empty = numpy_helper.from_array(_empty(elem, rank), name=f"{role}/empty/{out.name}")
        nodes.append(helper.make_node("Constant", [], [empty.name], value=empty))
        results.append(_declared(empty.name, out))
    return helper.make_graph(nodes, role, [], results, initializer=list(graph.initializer))


def _rename_nodes(nodes: Any, rename: Any) -> None:
    """Node names, inputs and outputs renamed, in the nodes' own subgraphs too."""
    for node in nodes:
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
        node.name = rename(node.name)
        for attribute in node.attribute:
            for sub in [attribute.g, *attribute.graphs]:
                _rename_nodes(sub.node, rename)
                for tensor in sub.initializer:
                    tensor.name = rename(tensor.name)


def _declared(name: str, like: Any) -> Any:
    """A value of `like`'s element type and rank, every size left open (branches differ)."""
    from onnx import helper

    rank = len(like.type.tensor_type.shape.dim)
    return helper.make_tensor_value_info(name, like.type.tensor_type.elem_type, [None] * rank)


def _empty(elem: int, rank: int) -> Any:
    import numpy as np
    from onnx import helper

    return np.zeros([0] * rank, dtype=helper.tensor_dtype_to_np_dtype(elem))


def _set_metadata(proto: Any, fields: dict[str, Any]) -> None:
    """The model file's metadata keys (zoo.modelfile), format `zoo.onnx`, plus `runtime`."""
    metadata = modelfile.encode_metadata(fields, format=FORMAT)
    metadata["runtime"] = json.dumps(fields["runtime"], ensure_ascii=False, sort_keys=True)
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "zoo"


# ----------------------------------------------------------------------------- parity
def _parity(data: bytes, graphs: list[Graph], relative: float | None = None) -> float:
    """The largest difference between onnxruntime's outputs and torch's on each graph's
    example inputs; over TOLERANCE the export fails. With `relative` (int8), each output's
    difference is divided by its largest torch value and must stay under `relative`."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    prefixed = len(graphs) > 1
    worst = 0.0
    for index, graph in enumerate(graphs):
        feeds = {_name(graph, n, prefixed): t.numpy() for n, t in graph.inputs.items()}
        if prefixed:
            feeds = {**idle_feeds(session), **feeds, "graph": _index(index)}
        names = [_name(graph, n, prefixed) for n in graph.outputs]
        got = session.run(names, feeds)
        with torch.no_grad():
            want = graph.module(*graph.inputs.values())
        want = want if isinstance(want, (tuple, list)) else (want,)
        for name, a, b in zip(names, got, want):
            b = b.detach().cpu().numpy()
            if a.shape != b.shape:
                raise ExportError(f"{name}: onnxruntime gives shape {a.shape}, torch {b.shape}")
            int8 = relative is not None
            difference = _difference(a, b, int8)
            limit = relative if relative is not None else TOLERANCE
            if not math.isfinite(difference) or difference > limit:
                scale, why = " of its scale", "int8 quantization broke it"
                if not int8:
                    scale, why = "", "an operation exports with other semantics"
                raise ExportError(
                    f"the {graph.role} graph's ONNX output {name} differs from torch's by "
                    f"{difference:.3g}{scale} (over {limit}): {why}"
                )
            worst = max(worst, difference)
    return worst


def _difference(a: Any, b: Any, relative: bool) -> float:
    """max |a - b| (float64), divided by max |b| when `relative` (1 where b is all zeros)."""
    if not a.size:
        return 0.0
    a, b = a.astype("float64"), b.astype("float64")
    difference = float(abs(a - b).max())
    if relative:
        scale = float(abs(b).max())
        difference /= scale if scale > 0 else 1.0
    return difference


def _quantized(proto: Any, fields: dict[str, Any]) -> bytes:
    """The float graph `proto` through onnxruntime's dynamic quantization (int8 weights,
    activations quantized at run time), with the metadata `fields` set again."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as folder, _quiet():
        target = Path(folder) / "int8.onnx"
        try:
            quantize_dynamic(proto, target, weight_type=QuantType.QInt8)
        except Exception as e:  # onnxruntime names the node it could not quantize
            raise ExportError(f"cannot quantize the graph to int8: {_first_line(e)}") from e
        quantized = onnx.load(str(target))
    _set_metadata(quantized, fields)
    return quantized.SerializeToString()


def _index(index: int) -> Any:
    import numpy as np

    return np.array(index, dtype=np.int64)


def idle_feeds(session: Any) -> dict[str, Any]:
    """Empty arrays for every input of a multi-graph file: the graph not run reads none of its
    inputs, but onnxruntime wants them all (declared sizes kept, varying ones 0)."""
    import numpy as np

    types = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_}
    return {
        i.name: np.zeros([d if isinstance(d, int) else 0 for d in i.shape], dtype=types[i.type])
        for i in session.get_inputs()
        if i.type in types
    }


def default_out(model_file: str | os.PathLike[str], quantize: str | None = None) -> Path:
    """FILE.safetensors -> FILE.onnx (FILE.int8.onnx when quantized), beside it."""
    suffix = f".{quantize}.onnx" if quantize else ".onnx"
    return Path(model_file).with_suffix(suffix)
