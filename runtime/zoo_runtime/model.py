"""What every exported model does in the runtime: open the file, check the graph against the
metadata, run it; and the small helpers the recipes share (vocabularies, batching, numbers).

A recipe is a `Model` subclass for one runtime `kind` (the metadata's `runtime.kind`): it says
which graph inputs it feeds (`expected_inputs`) and turns raw input into them and graph outputs
into answers (`predict`), giving the same dicts `zoo predict` gives (`input`, `output`, `text`).

As zoo's `Model.predict` does, every recipe's `predict` and `predict_file` first check each
input against the input limit (the export's `runtime.input_limit`, or `max_input_length=N`
among the options) before the recipe sees it: `Model.__init_subclass__` wraps them, so a
plugin's recipe gets the same checks without writing them.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from . import files, limits, onnxfile
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


PredictFile = Callable[..., tuple[str, list[dict[str, Any]]]]


def _checked_predict(predict: Callable[..., list[dict[str, Any]]]) -> Callable[..., Any]:
    """`predict` with zoo's checks first: each input a string within the limit, the count
    within `max_inputs`; a call inside another (predict_file's) was checked there."""

    @functools.wraps(predict)
    def checked(self: Model, inputs: Any, **options: Any) -> list[dict[str, Any]]:
        if limits.current() is not None:
            return predict(self, inputs, **options)
        items = [inputs] if isinstance(inputs, str) else list(inputs)
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise UsageError(f"input {i + 1}: expected a string, got {type(item).__name__}")
        limit, options = self.input_limit(options)
        limit.check_count(len(items), "the inputs")
        limit.check_all(items, lambda i: f"input {i + 1}")
        with limits.active(limit):
            return predict(self, items, **options)

    return checked


def _checked_predict_file(predict_file: PredictFile, one_a_line: bool) -> PredictFile:
    """`predict_file` with zoo's checks first: every line of the file within the limit (in
    any format a line is at most one input), named `FILE:LINE`; for one input a line, their
    count within `max_inputs`."""

    @functools.wraps(predict_file)
    def checked(self: Model, text: Any, name: str, **options: Any) -> tuple[str, list[dict]]:
        if limits.current() is not None:
            return predict_file(self, text, name, **options)
        if isinstance(text, (bytes, bytearray)):
            text = files.decode(bytes(text), name)
        if not isinstance(text, str):
            raise UsageError(f"{name}: expected the file's text, got {type(text).__name__}")
        limit, options = self.input_limit(options)
        lines = files.lines(text)
        if one_a_line:
            limit.check_count(sum(1 for line in lines if line.strip()), name)
        limit.check_all(lines, lambda i: f"{name}:{i + 1}")
        with limits.active(limit):
            return predict_file(self, text, name, **options)

    return checked


_INPUT_K = re.compile(r"^input (\d+)\b:?")


def _at_line(message: str, path: str, lines: list[int]) -> str:
    """An error about `input K` of a file's inputs, said of the file's line instead (zoo's
    Network.predict_file)."""
    found = _INPUT_K.match(message)
    if not found or not 1 <= int(found.group(1)) <= len(lines):
        return message
    rest = message[found.end() :].lstrip()
    return f"{path}:{lines[int(found.group(1)) - 1] + 1}: {rest}"


class Model:
    """An exported model opened for prediction; subclasses are the recipes (one per kind)."""

    kind: ClassVar[str] = ""
    options: ClassVar[dict[str, Option]] = {}
    input_unit: str = "characters"  # how an input is measured, for files without input_limit

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A recipe's own predict and predict_file get the input checks (module docstring)."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        if "predict" in own:
            cls.predict = _checked_predict(own["predict"])  # type: ignore[method-assign]
        if "predict_file" in own:
            checked = _checked_predict_file(own["predict_file"], one_a_line=False)
            cls.predict_file = checked  # type: ignore[method-assign]

    def __init__(self, path: str, data: bytes, fields: dict[str, Any], threads: int = 1):
        self.path = path
        self.fields = fields
        self.architecture, self.task = fields["architecture"], fields["task"]
        self.runtime = Fields(fields["runtime"], "runtime", path)
        self.state = Fields(fields["data_state"], "data_state", path)
        self.settings = Fields(self.runtime.get("settings", {}), "runtime.settings", path)
        self.input_unit, self.max_input_length = self._exported_limit()
        self.graphs = self._graphs()
        self.session = onnxfile.session(data, path, threads)
        onnxfile.check_inputs(self.session, path, self.expected_inputs())

    def _exported_limit(self) -> tuple[str, int | None]:
        """(unit, maximum) of `runtime.input_limit` as the export wrote it; for a file
        exported before zoo wrote limits, the recipe's unit and no maximum."""
        value = self.runtime.get("input_limit")
        if value is None:
            return self.input_unit, None
        maximum = value.get("max", 0) if isinstance(value, dict) else 0
        if (
            not isinstance(value, dict)
            or value.get("unit") not in limits.UNITS
            or isinstance(maximum, bool)
            or not (maximum is None or (isinstance(maximum, int) and maximum >= 1))
        ):
            raise ModelError(
                f"{self.path}: metadata runtime.input_limit must be "
                '{"unit": "characters", "words" or "steps", "max": a whole number from 1, or null}'
            )
        return value["unit"], maximum

    def input_limit(self, options: dict[str, Any]) -> tuple[limits.InputLimit, dict[str, Any]]:
        """The limit on one input (the export's, or `max_input_length` among `options`) and
        on their count (`max_inputs`), and the other options."""
        rest = dict(options)
        given = rest.pop(limits.OPTION, None)
        maximum = self.max_input_length if given is None else limits.parse_override(given)
        count = rest.pop(limits.REQUEST_OPTION, None)
        inputs = (
            limits.MAX_INPUTS
            if count is None
            else limits.parse_override(count, limits.REQUEST_OPTION)
        )
        return limits.InputLimit(self.input_unit, maximum, inputs), rest

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
        lines kept (zoo's default); recipes reading a structured format override it. Lines
        are zoo's (split on \\n alone), and an error about `input K` names the file's line."""
        lines = files.lines(text)
        filled = [i for i, line in enumerate(lines) if line.strip()]
        try:
            predictions = self.predict([lines[i] for i in filled], **options) if filled else []
        except UsageError as e:
            message = _at_line(str(e), name, filled)
            if message == str(e):
                raise
            raise type(e)(message) from None
        if len(predictions) != len(filled):  # the lines made one input (numbers, one a line)
            return "".join(f"{p['text']}\n" for p in predictions), predictions
        rendered = [""] * len(lines)
        for i, prediction in zip(filled, predictions):
            rendered[i] = str(prediction["text"])
        return "".join(line + "\n" for line in rendered), predictions

    # ----------------------------------------------------------------------- helpers
    def run(self, role: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs of graph `role` for `feeds` (keyed by the graph's input names). A
        failure inside onnxruntime is one line: out of memory, or the graph's fault."""
        try:
            return self.session.run(self.graphs[role]["outputs"], feeds)
        except Exception as e:  # onnxruntime's own types (Fail, RuntimeException, ...)
            exhausted = onnxfile.out_of_memory(e)
            if exhausted is not None:
                raise exhausted from None
            first = (str(e).strip().splitlines() or [""])[0][:300]
            raise ModelError(
                f"{self.path}: onnxruntime failed running the graph: {first}"
            ) from None

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


_ONE_A_LINE = _checked_predict_file(Model.predict_file, one_a_line=True)
Model.predict_file = _ONE_A_LINE  # type: ignore[method-assign]


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


FLOAT32_MAX = 3.4028234663852886e38  # the largest finite float32


def parse_numbers(text: str, where: str = "input") -> list[list[float]]:
    """'0.1 0.2,0.3 ...' -> one row per step, commas separating features (zoo's parser)."""
    plain = _plain_numbers(text)
    if plain is not None:
        return plain
    rows = []
    for token in text.split():
        try:
            row = [float(v) for v in token.split(",") if v != ""]
        except ValueError:
            raise UsageError(f"{where}: {limits.quoted(token)} is not a number") from None
        if not row or not all(math.isfinite(v) for v in row):
            raise UsageError(f"{where}: {limits.quoted(token)} is not a finite number")
        if any(abs(v) > FLOAT32_MAX for v in row):  # the network's float32 would make it inf
            raise UsageError(
                f"{where}: {limits.quoted(token)} is beyond what a 32-bit float holds (about 3.4e38)"
            )
        rows.append(row)
    return rows


def _plain_numbers(text: str) -> list[list[float]] | None:
    """The rows of a text of single finite float32-sized numbers (a served window: 336 of
    them, read in half the time token by token takes); None for anything else, which the full
    parser reads, or refuses naming the token."""
    if "," in text:
        return None
    try:
        values = [float(v) for v in text.split()]
    except ValueError:
        return None
    if not values or not all(map(math.isfinite, values)) or max(map(abs, values)) > FLOAT32_MAX:
        return None
    return [[v] for v in values]


def windows_of(inputs: list[str], what: str = "window") -> list[list[list[float]]]:
    """Numbers typed one per argument form one sequence (checked against the input limit
    as such); otherwise each input is one. As zoo's forecaster and step regressor."""
    windows = [parse_numbers(s, where=f"input {i + 1}") for i, s in enumerate(inputs)]
    if all(len(s.split()) == 1 for s in inputs):
        limits.check_input(windows, f"the inputs, read as one {what}")
        windows = [[step for one in windows for step in one]]
    return windows


def float32(rows: Sequence[Any]) -> np.ndarray:
    """Numbers as the graph's float32, as torch makes them: a finite number too large for
    float32 (1e300) becomes infinite, silently, where numpy would warn of the overflow."""
    with np.errstate(over="ignore"):
        return np.array(rows, dtype=np.float32)


def fmt(value: float | list[float]) -> str:
    if isinstance(value, list):
        return ",".join(f"{v:.4f}" for v in value)
    return f"{value:.4f}"
