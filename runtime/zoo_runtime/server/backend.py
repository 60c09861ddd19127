"""What the server serves: a backend is one model behind a small protocol, so that the same
server runs an ONNX file through this runtime (`OnnxBackend`, no torch, no zoo) and a
`.safetensors` file through torch (`zoo.features.serve.TorchBackend`, supplied by zoo).

A backend has a `name` (the URL's), describes itself for `GET /v1/models`, checks one request's
inputs and options before they join a queue (`check`: types, the model's input limit, the count
limit, the options), says whether a request may share a predict call with others
(`mergeable`) and predicts a list of inputs (`predict`), answering exactly what
`zoo predict --json` gives in its `predictions` for them.

Errors a backend raises: `InputError` for the caller's mistake (HTTP 422, zoo's exit code 2),
`ModelFailure` for a model that fails on an input (HTTP 500); both carry one line. Anything else
is a bug and is answered as one line too, never with a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from typing import Any, Protocol

from .. import limits
from ..files import clean
from ..onnxfile import RuntimeZooError

# Options a request may not set: the limits are the server's (its operator's) to set.
SERVER_OPTIONS = (limits.OPTION, limits.REQUEST_OPTION)
# Kinds whose inputs are independent: answers are the same predicted together or alone.
INDEPENDENT = {"tagger", "tagging", "seq2seq", "step-classification"}
# Kinds where numbers typed one per input form one series: independent when each input is
# itself a series (two steps or more), so that no request's inputs are joined with another's.
SERIES = {"forecaster", "window-regression", "step-regression"}
SAMPLING = {"char-lm"}  # one random generator runs through a request's inputs: only greedy joins


class InputError(Exception):
    """The caller's mistake (bad input, option, count): HTTP 422 with this one line."""


class ModelFailure(Exception):
    """The model failed on the request's inputs: HTTP 500 with this one line."""


class Backend(Protocol):
    """One served model (module docstring)."""

    name: str

    def describe(self) -> dict[str, Any]: ...

    def check(self, inputs: list[str], options: dict[str, Any]) -> None: ...

    def mergeable(self, inputs: list[str], options: dict[str, Any]) -> bool: ...

    def predict(self, inputs: list[str], options: dict[str, Any]) -> list[dict[str, Any]]: ...

    def warm(self) -> None: ...


def mergeable(kind: str, inputs: Sequence[str], options: dict[str, Any]) -> bool:
    """Whether a request of model kind `kind` may be predicted in one call with others of the
    same options and give the same answers (module constants); unknown kinds never merge."""
    if kind in INDEPENDENT:
        return True
    if kind in SERIES:
        return all(len(text.replace(",", " ").split()) >= 2 for text in inputs)
    if kind in SAMPLING:
        try:
            return float(options.get("temperature", 1.0)) == 0.0
        except (TypeError, ValueError):
            return False
    return False


def check_server_options(options: dict[str, Any]) -> None:
    """The limits are set where the server starts, never by a request."""
    for key in SERVER_OPTIONS:
        if key in options:
            raise InputError(f"options.{key}: set by the server, not by a request")


def one_line(error: BaseException, limit: int = 300) -> str:
    """An exception as one line for a response: its message's first line, clipped."""
    first = (str(error).strip().splitlines() or [""])[0][:limit]
    return first or type(error).__name__


def dumps(doc: Any) -> bytes:
    """Compact UTF-8 JSON; non-finite floats written as null (as zoo predict --json). By
    orjson: the json module spent 170 us writing a forecaster's answer (the 336 numbers of
    its window echoed, 24 forecast), 40% of a busy server's event loop; orjson 8 us. What
    orjson refuses (an integer beyond 64 bits) the json module writes."""
    import orjson

    try:
        return orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # orjson.JSONEncodeError
        pass
    try:
        text = json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        text = json.dumps(clean(doc), ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8")


def unique_names(paths: Sequence[str]) -> list[str]:
    """The URL name of each model: its file's stem (`tagger` for tagger.onnx), or its whole
    file name where two stems are alike; the same file name twice is refused."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    names = [s if stems.count(s) == 1 else os.path.basename(p) for s, p in zip(stems, paths)]
    for name in names:
        if names.count(name) > 1:
            raise RuntimeZooError(
                f"two models named {name!r}: give files with different names "
                "(the URL of each model is /v1/models/NAME, NAME its file name)"
            )
    return names


def onnx_card(fields: dict[str, Any], name: str) -> str:
    """A short Markdown card from an exported file's metadata (zoo card needs the
    .safetensors file and zoo; the export carries the same names and metrics)."""
    lines = [
        f"# {name}",
        "",
        f"A `{fields.get('architecture')}` model for {fields.get('task')}, trained on "
        f"`{fields.get('dataset', 'unknown')}`, exported to ONNX and served by zoo-runtime.",
    ]
    metrics = fields.get("metrics") or {}
    rows = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float))]
    for split, scores in metrics.items():
        if isinstance(scores, dict):
            rows += [(f"{split}/{k}", v) for k, v in scores.items() if isinstance(v, (int, float))]
    if rows:
        lines += ["", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" for k, v in rows if not isinstance(v, bool)]
    return "\n".join(lines) + "\n"


class OnnxBackend:
    """An exported model (`zoo export`) served through this runtime: no torch, no zoo."""

    backend = "onnx"

    def __init__(self, name: str, path: str, *, threads: int = 1, group: int = 12):
        from .. import load

        self.name, self.path, self.group = name, path, group
        self.model = load(path, threads=threads)

    def describe(self) -> dict[str, Any]:
        fields = self.model.fields
        return {
            "name": self.name,
            "backend": self.backend,
            "file": os.path.basename(self.path),
            "architecture": self.model.architecture,
            "task": self.model.task,
            "kind": self.model.kind,
            "dataset": fields.get("dataset"),
            "metrics": clean(fields.get("metrics") or {}),
            "input_unit": self.model.input_unit,
            "max_input_length": self.model.max_input_length,
            "options": {k: o.default for k, o in self.model.options.items()},
            "card": onnx_card(fields, self.name),
        }

    def check(self, inputs: list[str], options: dict[str, Any]) -> None:
        check_server_options(options)
        limit, rest = self.model.input_limit(options)
        try:
            limit.check_count(len(inputs), "inputs")
            limit.check_all(inputs, lambda i: f"input {i + 1}")
            self.model.resolve(rest)
        except RuntimeZooError as e:
            raise InputError(str(e)) from None

    def mergeable(self, inputs: list[str], options: dict[str, Any]) -> bool:
        return mergeable(self.model.kind, inputs, options)

    def predict(self, inputs: list[str], options: dict[str, Any]) -> list[dict[str, Any]]:
        if "batch_size" in self.model.options and "batch_size" not in options:
            options = {**options, "batch_size": self.group}  # length-ordered groups
        try:
            return self.model.predict(inputs, **options)
        except RuntimeZooError as e:
            if e.exit_code == 2:
                raise InputError(str(e)) from None
            raise ModelFailure(str(e)) from None

    def warm(self) -> None:
        example = warm_input({"kind": self.model.kind}, self.model.state)
        if example is not None:
            with contextlib.suppress(InputError, ModelFailure):
                self.predict([example], {})


def warm_input(description: dict[str, Any], state: Any) -> str | None:
    """An input to run once before the model is called ready (first calls allocate), or None
    where no safe one is known."""
    kind = description.get("kind") or description.get("task")
    if kind in ("tagger", "tagging", "seq2seq"):
        return "the"
    if kind in ("forecaster", "window-regression"):
        try:
            length, size = int(state.get("input_length")), int(state.get("input_size"))
        except (TypeError, ValueError):
            return None
        return " ".join([",".join(["0"] * size)] * length)
    return None


def onnx_backends(files: Sequence[str], threads: int = 1, group: int = 12) -> list[OnnxBackend]:
    """The backends of `zoo-runtime serve FILE...`: each .onnx file opened by the runtime."""
    names = unique_names(files)
    return [OnnxBackend(n, f, threads=threads, group=group) for n, f in zip(names, files)]
