"""What every exported model does in the runtime: open the file, check the graph against the
metadata, run it; and the small helpers the recipes share (vocabularies, batching, numbers).

A recipe is a `Model` subclass for one runtime `kind` (the metadata's `runtime.kind`): it says
which graph inputs it feeds (`expected_inputs`) and turns raw input into them and graph outputs
into answers (`predict`), giving the same dicts `zoo predict` gives (`input`, `output`, `text`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from . import onnxfile
from .onnxfile import ModelError, UsageError
from .schema import Fields

T = TypeVar("T")
R = TypeVar("R")
INT64, FLOAT = "tensor(int64)", "tensor(float)"


@dataclass(frozen=True)
class Option:
    """A predict option: its default and the range a value must lie in."""

    default: Any
    low: float
    high: float


class Model:
    """An exported model opened for prediction; subclasses are the recipes (one per kind)."""

    kind: ClassVar[str] = ""
    options: ClassVar[dict[str, Option]] = {}

    def __init__(self, path: str, data: bytes, fields: dict[str, Any], threads: int = 1):
        self.path = path
        self.fields = fields
        self.architecture, self.task = fields["architecture"], fields["task"]
        self.runtime = Fields(fields["runtime"], "runtime", path)
        self.state = Fields(fields["data_state"], "data_state", path)
        self.settings = Fields(self.runtime.get("settings", {}), "runtime.settings", path)
        self.graphs = self._graphs()
        self.session = onnxfile.session(data, path, threads)
        onnxfile.check_inputs(self.session, path, self.expected_inputs())

    def _graphs(self) -> dict[str, dict[str, list[str]]]:
        graphs = self.runtime.get("graphs")
        if not isinstance(graphs, dict) or not graphs or len(graphs) > 16:
            raise ModelError(f"{self.path}: metadata runtime.graphs must name the graphs")
        out = {}
        for role, graph in graphs.items():
            where = Fields(graph, f"runtime.graphs.{role}", self.path)
            out[role] = {"inputs": where.strings("inputs"), "outputs": where.strings("outputs")}
        return out

    # ------------------------------------------------------------------ what recipes give
    def expected_inputs(self) -> dict[str, tuple[str, int]]:
        """Every graph input: name -> (onnxruntime type, rank)."""
        raise NotImplementedError

    def predict(self, inputs: list[str], **options: Any) -> list[dict[str, Any]]:
        """One dict per input (`input`, `output`, `text`), as `zoo predict` gives."""
        raise NotImplementedError

    def predict_file(self, text: str, name: str, **options: Any) -> tuple[str, list[dict]]:
        """`--input FILE`: each non-blank line an input, its output on the same line, blank
        lines kept (zoo's default); recipes reading a structured format override it."""
        lines = text.splitlines()
        filled = [i for i, line in enumerate(lines) if line.strip()]
        predictions = self.predict([lines[i] for i in filled], **options) if filled else []
        if len(predictions) != len(filled):  # the lines made one input (numbers, one a line)
            return "".join(f"{p['text']}\n" for p in predictions), predictions
        rendered = [""] * len(lines)
        for i, prediction in zip(filled, predictions):
            rendered[i] = str(prediction["text"])
        return "".join(line + "\n" for line in rendered), predictions

    # ----------------------------------------------------------------------- helpers
    def run(self, role: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs of graph `role` for `feeds` (keyed by the graph's input names)."""
        return self.session.run(self.graphs[role]["outputs"], feeds)

    def resolve(self, options: dict[str, Any]) -> dict[str, Any]:
        """Predict options with defaults filled in; an unknown or out-of-range one is a
        UsageError naming it."""
        out = {k: o.default for k, o in self.options.items()}
        for key, value in options.items():
            if key not in self.options:
                known = ", ".join(self.options) or "none"
                raise UsageError(f"unknown option {key!r} for {self.kind} (options: {known})")
            option = self.options[key]
            try:
                value = type(option.default)(value)
            except (TypeError, ValueError):
                raise UsageError(f"option {key}={value!r}: expected a number") from None
            if isinstance(value, float) and not math.isfinite(value):
                raise UsageError(f"option {key}={value!r}: expected a finite number")
            if not option.low <= value <= option.high:
                raise UsageError(
                    f"option {key}={value}: must be from {option.low} to {option.high}"
                )
            out[key] = value
        return out

    def __repr__(self) -> str:
        return f"<zoo_runtime {self.kind} model {self.architecture} ({self.task}) from {self.path}>"


class Vocab:
    """Token <-> id, as zoo.vocab.Vocab: unknown tokens map to `<unk>` when the list has it."""

    def __init__(self, tokens: Sequence[str], unk: str | None = "<unk>"):
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.unk_id = self.index.get(unk) if unk is not None else None

    def __len__(self) -> int:
        return len(self.tokens)

    def id(self, token: str) -> int:
        i = self.index.get(token, self.unk_id)
        if i is None:
            raise UsageError(f"{token!r} is not in the model's vocabulary")
        return i

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self.id(t) for t in tokens]

    def decode(self, ids: Sequence[int]) -> list[str]:
        return [self.tokens[i] for i in ids]


def pad(rows: Sequence[Sequence[int]], value: int = 0) -> np.ndarray:
    """[len(rows), longest] int64, right-padded with `value`."""
    longest = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), longest), value, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def in_length_order(
    items: Sequence[T], batch_size: int, length: Callable[[T], int] = len
) -> Iterator[tuple[list[int], list[T]]]:
    """(positions, items) batches, shortest first, as zoo batches prediction."""
    order = sorted(range(len(items)), key=lambda i: length(items[i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        yield chunk, [items[i] for i in chunk]


def map_in_length_order(
    run: Callable[[list[T]], Sequence[R]], items: Sequence[T], batch_size: int
) -> list[R]:
    results: list[Any] = [None] * len(items)
    for positions, batch in in_length_order(items, batch_size):
        for i, result in zip(positions, run(batch)):
            results[i] = result
    return results


def parse_numbers(text: str, where: str = "input") -> list[list[float]]:
    """'0.1 0.2,0.3 ...' -> one row per step, commas separating features (zoo's parser)."""
    rows = []
    for token in text.split():
        try:
            row = [float(v) for v in token.split(",") if v != ""]
        except ValueError:
            raise UsageError(f"{where}: {token!r} is not a number") from None
        if not row or not all(math.isfinite(v) for v in row):
            raise UsageError(f"{where}: {token!r} is not a finite number")
        rows.append(row)
    return rows


def windows_of(inputs: list[str]) -> list[list[list[float]]]:
    """Numbers typed one per argument form one sequence; otherwise each input is one."""
    if all(len(s.split()) == 1 for s in inputs):
        return [parse_numbers(" ".join(inputs))]
    return [parse_numbers(s) for s in inputs]


def fmt(value: float | list[float]) -> str:
    if isinstance(value, list):
        return ",".join(f"{v:.4f}" for v in value)
    return f"{value:.4f}"
