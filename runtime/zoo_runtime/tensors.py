"""Recipe `tensors`: a graph zoo traced without knowing its inputs' meaning (a third-party
architecture with no export_spec). Raw arrays in, raw arrays out: `run_arrays`."""

from __future__ import annotations

from typing import Any

import numpy as np

from .model import Model, UsageError

TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_}


class Tensors(Model):
    kind = "tensors"

    def expected_inputs(self) -> dict[str, tuple[str, int]]:
        found = {i.name: (i.type, len(i.shape)) for i in self.session.get_inputs()}
        return {n: found.get(n, ("missing", 0)) for n in self.graphs["model"]["inputs"]}

    def run_arrays(self, *arrays: Any) -> list[np.ndarray]:
        """The graph's outputs for its inputs, in order (nested lists or arrays)."""
        inputs = self.session.get_inputs()
        if len(arrays) != len(inputs):
            raise UsageError(f"the graph takes {len(inputs)} input(s), got {len(arrays)}")
        feeds = {i.name: np.asarray(a, dtype=TYPES.get(i.type)) for i, a in zip(inputs, arrays)}
        return self.run("model", feeds)

    def predict(self, inputs: list[str], **options: Any) -> list[dict[str, Any]]:
        raise UsageError(
            f"{self.architecture} was exported without a runtime recipe: its graph takes raw "
            "arrays (Model.run_arrays); its plugin can register one (docs/export.md)"
        )
