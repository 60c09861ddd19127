"""The Elman networks as ONNX graphs (`zoo export`, docs/export.md), one per task, for any
batch and sequence length:

- step-regression: numbers [batch, time, features] in, numbers [batch, time, outputs] out;
- step-classification: symbol ids [batch, time] in, scores [batch, time, symbols] out;
- char-lm: character ids [batch, time] and the recurrent state in, next-character scores and
  the state after out, so the runtime carries the state from step to step as `generate` does.

The runtime's recipes of the same names read the vocabularies from the data state.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.toolkit.exportspec import ExportSpec, Graph

SEQUENCE = {0: "batch", 1: "time"}


class Stepwise(nn.Module):
    """forward(x) -> the network's per-step outputs (no lengths: one unpadded batch)."""

    def __init__(self, network: Any):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


class LanguageModelStep(nn.Module):
    """forward(ids, h[, c]) -> (scores, h[, c]): CharLM.run with an explicit state."""

    def __init__(self, network: Any):
        super().__init__()
        self.network = network

    def forward(self, ids: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, after = self.network.run(ids, state if len(state) == 2 else state[0])
        return (logits, *after) if isinstance(after, tuple) else (logits, after)


def export_spec(network: Any, task: str) -> ExportSpec:
    """The graph of an Elman network for `task`, traced on two sequences of five steps."""
    if task == "step-regression":
        x = torch.linspace(-1.0, 1.0, 10 * int(network.state["input_size"]))
        inputs = {"x": x.reshape(2, 5, -1)}
        return ExportSpec(
            task, [Graph(Stepwise(network), inputs, ["y"], {"x": SEQUENCE, "y": SEQUENCE})]
        )
    ids = torch.tensor([[1, 2, 3, 2, 1], [2, 2, 1, 3, 3]]).clamp(max=network.vocab_size - 1)
    if task == "step-classification":
        dynamic = {"ids": SEQUENCE, "scores": SEQUENCE}
        return ExportSpec(task, [Graph(Stepwise(network), {"ids": ids}, ["scores"], dynamic)])
    rnn = network.rnn
    zeros = torch.zeros(rnn.num_layers, 2, rnn.hidden_size)
    names = ["h", "c"] if network.config.cell == "lstm" else ["h"]
    inputs = {"ids": ids, **{n: zeros for n in names}}
    state_axes = {1: "batch"}
    dynamic = {"ids": SEQUENCE, "scores": SEQUENCE}
    dynamic.update({n: state_axes for n in names})
    dynamic.update({f"{n}_out": state_axes for n in names})
    graph = Graph(
        LanguageModelStep(network), inputs, ["scores", *(f"{n}_out" for n in names)], dynamic
    )
    return ExportSpec(task, [graph])
