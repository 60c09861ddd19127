"""Models made for the runtime's tests: small, untrained but with weights spread wide (so their
answers differ from input to input), saved and exported to ONNX."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
try:
    import zoo_runtime  # noqa: F401
except ImportError:  # not pip-installed here: the folder itself
    sys.path.insert(0, str(RUNTIME))


def scrambled(name: str, dataset: str, **settings):
    """An untrained model whose weights are drawn wide: varied tags, forecasts, tokens."""
    import torch

    import zoo

    torch.manual_seed(0)
    model = zoo.create(name, dataset, **settings)
    with torch.no_grad():
        for p in model.module.parameters():
            p.normal_(0.0, 0.5)
    return model


@pytest.fixture
def exported(tmp_path, one_thread):
    """exported(name, dataset, **settings) -> (model file, onnx file, export document)."""
    from zoo.features.export import export_onnx

    def make(name: str, dataset: str, **settings):
        model = scrambled(name, dataset, **settings)
        path = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}.safetensors"
        model.save(path)
        import zoo

        onnx_path = path.with_suffix(".onnx")
        doc = export_onnx(zoo.load(path), onnx_path)
        return path, onnx_path, doc

    return make
