"""`zoo export --quantize int8`: onnxruntime's dynamic quantization of the exported graph, every
metadata key kept and the quantization recorded, opened by the runtime and served by the
server as the float file is, checked against torch relative to each output's scale."""

from __future__ import annotations

import json

import pytest

import zoo
from tests.runtime.conftest import KINDS
from tests.servers import Server, runtime_serve
from zoo.core.errors import ZooError
from zoo.features import export
from zoo.features.export import export_onnx


def metadata(path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_quantizes_and_the_runtime_answers_alike(kinds, kind, tmp_path):
    import zoo_runtime

    model_file, float_file = kinds[kind]
    out = tmp_path / f"{kind}.int8.onnx"
    doc = export_onnx(zoo.load(model_file), out, quantize="int8")
    assert doc["quantization"] == "int8" and doc["float_bytes"] == float_file.stat().st_size
    assert 0 <= doc["int8_difference"] <= export.INT8_TOLERANCE
    meta, float_meta = metadata(out), metadata(float_file)
    assert meta.keys() == float_meta.keys()
    runtime = json.loads(meta["runtime"])
    assert runtime.pop("quantization") == "int8"
    assert runtime == json.loads(float_meta["runtime"])
    assert {k: v for k, v in meta.items() if k != "runtime"} == {
        k: v for k, v in float_meta.items() if k != "runtime"
    }
    int8, float32 = zoo_runtime.load(out), zoo_runtime.load(float_file)
    inputs = {"forecaster": None, "forecaster-csv": None, "step-regression": ["0.1 0.2 0.3"]}
    if kind.startswith("forecaster"):
        length = int(float32.state.get("input_length"))
        inputs[kind] = [" ".join(str(i % 5) for i in range(length))]
    given = inputs.get(kind) or ["the dog"]
    if kind in ("step-classification", "char-lm"):
        given = ["ab"]
    a, b = int8.predict(given), float32.predict(given)
    assert [x["input"] for x in a] == [x["input"] for x in b] and len(a) == len(given)
    assert [type(x["output"]) for x in a] == [type(x["output"]) for x in b]


def test_int8_shrinks_an_lstm_and_its_embeddings(kinds, tmp_path):
    """The tagger's LSTM (DynamicQuantizeLSTM) and embeddings (Gather) are int8: a larger
    tagger's file is under half its float size."""
    import onnx

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    path = tmp_path / "tagger.safetensors"
    zoo.create("lstm-tagger", "toy-tags", hidden_size=64, embedding_dim=64).save(path)
    doc = export_onnx(zoo.load(path), tmp_path / "t.int8.onnx", quantize="int8")
    assert doc["bytes"] < doc["float_bytes"] / 2
    ops = {n.op_type for n in onnx.load(str(tmp_path / "t.int8.onnx")).graph.node}
    assert "DynamicQuantizeLSTM" in ops and "LSTM" not in ops


def test_the_command_names_the_file_and_refuses_other_kinds(zoo, kinds):
    model_file, _ = kinds["tagger"]
    r = zoo("export", model_file, "--quantize", "int8", "--out", "t.int8.onnx", "--json")
    assert r.code == 0, r.stderr
    assert r.json()["quantization"] == "int8" and r.json()["out"] == "t.int8.onnx"
    r = zoo("export", model_file, "--quantize", "int8")
    assert r.code == 0 and "wrote " + str(model_file.with_suffix(".int8.onnx")) in r.stdout
    assert "int8:" in r.stdout and "bytes as float32" in r.stdout
    r = zoo("export", model_file, "--quantize", "int4")
    assert r.code == 2 and "--quantize" in r.error_line() and "int8" in r.error_line()


def test_a_quantization_that_breaks_the_graph_writes_nothing(kinds, tmp_path, monkeypatch):
    model_file, _ = kinds["forecaster"]
    out = tmp_path / "f.int8.onnx"
    monkeypatch.setattr(export, "INT8_TOLERANCE", 0.0)  # any int8 rounding is now too much
    with pytest.raises(ZooError, match=r"of its scale \(over 0.0\): int8 quantization broke it"):
        export_onnx(zoo.load(model_file), out, quantize="int8")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    def fails(*args, **kwargs):
        raise RuntimeError("no kernel for node X\nsecond line")

    monkeypatch.setattr("onnxruntime.quantization.quantize_dynamic", fails)
    with pytest.raises(ZooError, match=r"^cannot quantize the graph to int8: RuntimeError: no "):
        export_onnx(zoo.load(model_file), out, quantize="int8")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_server_serves_the_int8_file(kinds, tmp_path):
    model_file, _ = kinds["tagger"]
    out = tmp_path / "tagger.int8.onnx"
    export_onnx(zoo.load(model_file), out, quantize="int8")
    with Server(runtime_serve(out)) as server:
        status, doc = server.predict("tagger.int8", ["the dog runs"])
        assert status == 200
        (prediction,) = doc["predictions"]
        assert [w for w, _ in prediction["output"]] == ["the", "dog", "runs"]
