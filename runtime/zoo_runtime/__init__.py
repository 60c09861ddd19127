"""zoo_runtime: run rnn-zoo models exported to ONNX with numpy and onnxruntime only.

    import zoo_runtime
    tagger = zoo_runtime.load("tagger.onnx")
    tagger.predict(["The dog ate the apple ."])   # [{"input", "output", "text"}], as zoo's

`zoo export MODEL.safetensors` writes the `.onnx` file; everything needed besides the graph
(vocabularies, tag names, normalisation, window and horizon, special symbols, the configs)
travels in its metadata, so the file alone is enough. Each runtime `kind` is a recipe, a
`Model` subclass; a plugin whose network needs its own pre- or post-processing registers one
with `register(kind, cls)` (docs/export.md). Unknown kinds open as `Tensors`: raw arrays in
and out.

The runtime imports neither zoo nor torch, by design: a few small pieces of zoo's text and
number handling (the seq2seq tokeniser and detokeniser, `parse_numbers`, the Elman step output)
are therefore written again here, in numpy. tests/runtime/test_parity.py holds them to zoo's:
every architecture's answers from the runtime must equal `zoo predict`'s on the same inputs.
"""

from __future__ import annotations

import importlib
import os

from .files import WriteError
from .model import Model
from .onnxfile import (
    DataError,
    ModelError,
    OutOfMemory,
    RuntimeZooError,
    SettingError,
    UsageError,
    read,
)

__version__ = "0.1.0"
__all__ = [
    "DataError",
    "Model",
    "ModelError",
    "OutOfMemory",
    "RuntimeZooError",
    "SettingError",
    "UsageError",
    "WriteError",
    "load",
    "register",
]

_RECIPES: dict[str, str | type[Model]] = {
    "tagger": "zoo_runtime.tagger:Tagger",
    "forecaster": "zoo_runtime.forecaster:Forecaster",
    "step-regression": "zoo_runtime.elman:StepRegressor",
    "step-classification": "zoo_runtime.elman:StepClassifier",
    "char-lm": "zoo_runtime.elman:CharLM",
    "seq2seq": "zoo_runtime.seq2seq:Seq2Seq",
    "tensors": "zoo_runtime.tensors:Tensors",
}


def register(kind: str, recipe: type[Model]) -> None:
    """Make `load` open files of runtime kind `kind` with `recipe` (a Model subclass)."""
    if not (isinstance(recipe, type) and issubclass(recipe, Model)):
        raise TypeError("a recipe is a zoo_runtime.Model subclass")
    _RECIPES[kind] = recipe


def _recipe(kind: str) -> type[Model]:
    ref = _RECIPES.get(kind, _RECIPES["tensors"])
    if isinstance(ref, str):
        module, _, name = ref.partition(":")
        ref = getattr(importlib.import_module(module), name)
    return ref


def load(path: str | os.PathLike[str], *, threads: int = 1) -> Model:
    """Open an exported model (`zoo export`): its metadata checked, its graph loaded."""
    data, fields = read(path)
    kind = fields["runtime"].get("kind")
    if not isinstance(kind, str):
        raise ModelError(f"{path}: metadata runtime.kind must be a string")
    return _recipe(kind)(str(path), data, fields, threads)
