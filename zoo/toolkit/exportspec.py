"""What a network hands `zoo export` (its optional `export_spec()`, zoo/toolkit/network.py):
the graphs to write to ONNX, with example inputs and the axes that vary, and the recipe that
the torch-free runtime follows around them. The writing itself is zoo/features/export.py;
docs/export.md describes both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class Graph:
    """One graph to export: `module(*inputs.values())` returns the tensors named `outputs`.

    `inputs` are example tensors, by name, in the module's argument order; `dynamic` names the
    axes that vary, `{"words": {0: "batch", 1: "time"}}`, outputs included. `role` names the
    graph when a model has several (the runtime asks for it by that name)."""

    module: nn.Module
    inputs: dict[str, torch.Tensor]
    outputs: list[str]
    dynamic: dict[str, dict[int, str]] = field(default_factory=dict)
    role: str = "model"


@dataclass
class ExportSpec:
    """What a network exports (`zoo.Network.export_spec`): its graphs and, for the runtime,
    the recipe `kind` that turns raw input into graph inputs and graph outputs into answers,
    with any `settings` that recipe needs beyond the data state (special symbol ids, limits)."""

    kind: str
    graphs: list[Graph]
    settings: dict[str, Any] = field(default_factory=dict)
