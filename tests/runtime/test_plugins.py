"""Third-party architectures: a traceable network exports with no extra code and runs in the
runtime as raw arrays; one that cannot be exported gets one line naming the operation."""

from __future__ import annotations

import pytest
import torch
import zoo_runtime
from torch import nn

import zoo
from tests.conftest import scripted_registry
from zoo.features.export import export_onnx


class Doubler(zoo.Network):
    """A third party's network with a traceable forward and no export_spec."""

    def __init__(self, config, state):
        super().__init__(config, state)
        self.layer = nn.Linear(1, 1)

    def forward(self, x):
        return self.layer(x) * 2

    def loss(self, batch):
        return self(batch["x"]).pow(2).mean()

    def evaluate(self, batches):
        return {"loss": 0.0}

    def predict(self, inputs, options):
        values = self(torch.tensor([[float(s)] for s in inputs]))
        return [
            {"input": s, "output": float(v), "text": f"{float(v):.4f}"}
            for s, v in zip(inputs, values)
        ]


class Untraceable(Doubler):
    def forward(self, x):
        return torch.cummax(self.layer(x), 0)[0]  # no ONNX form in torch's exporter


def test_a_traceable_plugin_exports_with_no_extra_code(use_registry, tmp_path):
    registry, _ = scripted_registry(implementation=Doubler)
    use_registry(registry)
    model = zoo.create("scripted", "toy")
    model.save(tmp_path / "d.safetensors")
    with pytest.raises(zoo.UsageError, match="--example"):
        export_onnx(zoo.load(tmp_path / "d.safetensors"), tmp_path / "d.onnx")
    doc = export_onnx(
        zoo.load(tmp_path / "d.safetensors"), tmp_path / "d.onnx", examples=["1", "2"]
    )
    assert doc["kind"] == "tensors" and doc["graphs"]["model"]["inputs"] == ["input0"]
    runtime = zoo_runtime.load(tmp_path / "d.onnx")
    (out,) = runtime.run_arrays([[3.0], [4.0], [5.0]])  # another batch size than traced
    want = model.module(torch.tensor([[3.0], [4.0], [5.0]])).detach().numpy()
    assert abs(out - want).max() < 1e-6


def test_an_untraceable_plugin_gets_one_line(use_registry, tmp_path):
    from zoo.features.export import ExportError

    registry, _ = scripted_registry(implementation=Untraceable)
    use_registry(registry)
    zoo.create("scripted", "toy").save(tmp_path / "u.safetensors")
    with pytest.raises(ExportError) as e:
        export_onnx(zoo.load(tmp_path / "u.safetensors"), tmp_path / "u.onnx", examples=["1"])
    assert str(e.value).startswith("cannot export the model graph to ONNX: ")
    assert "aten::cummax" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "u.onnx").exists()
