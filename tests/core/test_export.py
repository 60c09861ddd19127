"""`zoo export`: one ONNX file per model, errors as `zoo predict` gives them, a clear line for
what cannot be exported, and the optional packages imported only when the command runs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import zoo

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture
def tagger_file(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "tagger.safetensors"
    zoo.create("lstm-tagger", "toy-tags", hidden_size=8, embedding_dim=8).save(path)
    return path


def test_export_writes_one_onnx_file(zoo, tagger_file):
    r = zoo("export", tagger_file, "--json")
    assert r.code == 0, r.stderr
    doc = r.json()
    assert doc["out"] == str(tagger_file.with_suffix(".onnx")) and doc["kind"] == "tagger"
    assert doc["graphs"]["model"]["inputs"][:2] == ["words", "lengths"]
    assert doc["max_difference"] <= 1e-5 and tagger_file.with_suffix(".onnx").stat().st_size > 0
    r = zoo("export", tagger_file, "--out", "other.onnx")
    assert r.code == 0 and "wrote other.onnx" in r.stdout and "parity" in r.stdout


def test_export_errors_are_zoo_predicts(zoo, tagger_file, tmp_path):
    damaged = tmp_path / "damaged.safetensors"
    data = bytearray(tagger_file.read_bytes())
    data[-5] ^= 0xFF
    damaged.write_bytes(bytes(data))
    for path in (damaged, tmp_path / "missing.safetensors"):
        want = zoo("predict", path, "a b").error_line()
        assert zoo("export", path).error_line() == want
    r = zoo("export", tagger_file, "--out", str(tagger_file))
    assert r.code == 2 and "is the same file as FILE" in r.error_line()
    r = zoo("export", tagger_file, "--out", str(tmp_path / "no" / "x.onnx"))
    assert r.code == 2 and "does not exist" in r.error_line()


def test_without_onnx_one_line_says_what_to_install(zoo, tagger_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    r = zoo("export", tagger_file)
    assert r.code == 1
    assert r.error_line() == "Error: zoo export needs onnx: pip install 'rnn-zoo[onnx]'"


@pytest.mark.slow
def test_export_help_imports_neither_torch_nor_onnx():
    probe = (
        "import sys\nfrom zoo.cli import cli\ntry:\n    cli.main(args=['export', '--help'], "
        "prog_name='zoo')\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules))"
    )
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert p.stdout.strip().endswith("[]"), p.stdout + p.stderr
