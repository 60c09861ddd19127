"""`zoo serve`'s torch backend: a saved zoo model behind the runtime's HTTP server.

The server itself is the torch-free runtime's (`zoo_runtime.server`, the `rnn-zoo-runtime`
package with its `[serve]` extra): one server for `.safetensors` files (here, through torch)
and `.onnx` files (through the runtime's own backend), so that one `zoo serve` serves both.
This module gives the server what it asks of a backend (zoo_runtime/server/backend.py):
a description for `/v1/models` (with `zoo card`'s card), the checks of `zoo predict` (input
limit, count, predict options) before a request joins a queue, and `Model.predict`, whose
answers are exactly `zoo predict --json`'s `predictions`.

Threads: `zoo.load` leaves torch at its default (two threads here), and a predict called from
the server's inference thread then takes three times as long as at one thread; so each server
process sets torch to `threads` (1 unless asked) before loading, as every zoo command does.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from typing import Any

import torch

from zoo.core import config as cfg
from zoo.core import limits
from zoo.core.errors import ZooError
from zoo.core.formatting import clean
from zoo.core.settings import predict_options, split_trained
from zoo.features.card import card
from zoo.training.model import Model, load
from zoo.training.trainer import resolve_device, set_threads

MAX_OPTION_SETS = 256  # distinct request options kept resolved (TorchBackend.options)


class TorchBackend:
    """A `.safetensors` model served through torch (module docstring)."""

    backend = "torch"

    def __init__(self, name: str, path: str, *, device: str = "cpu", group: int = 12):
        self.name, self.path, self.group = name, path, group
        self.model: Model = load(path, device=resolve_device(device))
        self.model.module.eval()  # served, never trained: once, not at every call
        spec = self.model.architecture
        self.option_names = cfg.field_names(spec.predict_config) if spec.predict_config else []
        self.own_names = cfg.field_names(spec.config)
        self.limit, _ = self.model.input_limit({})  # a request may not change it (check)
        self.resolved: dict[str, Any] = {}  # options as JSON -> the predict options object

    def describe(self) -> dict[str, Any]:
        spec, module = self.model.architecture, self.model.module
        defaults = cfg.to_dict(spec.predict_config()) if spec.predict_config else {}
        return {
            "name": self.name,
            "backend": self.backend,
            "file": os.path.basename(self.path),
            "architecture": self.model.name,
            "task": self.model.task,
            "kind": self.model.task,
            "dataset": self.model.dataset,
            "metrics": clean(self.model.metrics or {}),
            "input_unit": module.input_unit,
            "max_input_length": module.max_input_length,
            "options": defaults,
            "card": card(self.path),
        }

    def check(self, inputs: list[str], options: dict[str, Any]) -> None:
        """`zoo predict`'s checks, before the request joins a queue: the input limit and count
        (its words), and the predict options (`options`)."""
        from zoo_runtime.server.backend import InputError, check_server_options

        check_server_options(options)
        try:
            self.limit.check_count(len(inputs), "inputs")
            self.limit.check_all(inputs, lambda i: f"input {i + 1}")
        except ZooError as e:
            raise InputError(str(e)) from None
        self.options(options)

    def options(self, options: dict[str, Any]) -> Any:
        """A request's predict options as `Model.predict` resolves them, once for each set of
        options (resolving them cost a fifth of a millisecond a call); a model setting, which
        would rebuild the model for one request, is refused."""
        from zoo_runtime.server.backend import InputError

        key = json.dumps(options, sort_keys=True)
        resolved = self.resolved.get(key)
        if resolved is None:
            rest = self.model.input_limit(options)[1]
            try:
                changes, rest = split_trained(self.own_names, rest, "predict", self.option_names)
                if changes:
                    raise InputError(
                        f"options.{next(iter(changes))}: a model setting; the server serves "
                        "the model as it was loaded (give predict options only)"
                    )
                resolved = predict_options(self.model.architecture, rest)
            except ZooError as e:
                raise InputError(str(e)) from None
            if len(self.resolved) >= MAX_OPTION_SETS:  # a bound against endless variety
                self.resolved.clear()
            self.resolved[key] = resolved
        return resolved

    def mergeable(self, inputs: list[str], options: dict[str, Any]) -> bool:
        from zoo_runtime.server.backend import mergeable

        return mergeable(self.model.task, inputs, options)

    def predict(self, inputs: list[str], options: dict[str, Any]) -> list[dict[str, Any]]:
        """What `Model.predict` answers for checked inputs (`check`), without its per-call
        work (checks done, options resolved, eval mode set): inputs ordered by length in
        groups of `group` where the architecture batches (`batch_size`), as padding a batch of
        64 to its longest input costs more than groups of similar length."""
        from zoo_runtime.server.backend import InputError, ModelFailure

        if "batch_size" in self.option_names and "batch_size" not in options:
            options = {**options, "batch_size": self.group}
        resolved = self.options(options)
        try:
            with torch.inference_mode(), limits.active(self.limit):
                return self.model.checked.predict(list(inputs), resolved)
        except ZooError as e:
            if e.exit_code == 2:
                raise InputError(str(e)) from None
            raise ModelFailure(str(e)) from None

    def warm(self) -> None:
        from zoo_runtime.server.backend import InputError, ModelFailure, warm_input

        example = warm_input({"kind": self.model.task}, self.model.state)
        if example is not None:
            with contextlib.suppress(InputError, ModelFailure):
                self.predict([example], {})


def backends(
    files: Sequence[str], threads: int = 1, device: str = "cpu", group: int = 12
) -> list[Any]:
    """The backends of `zoo serve FILE...`: `.onnx` files through the runtime, the others
    (`.safetensors`) through torch at `threads` threads. Called in each server process."""
    from zoo_runtime.onnxfile import RuntimeZooError
    from zoo_runtime.server.backend import OnnxBackend, unique_names

    set_threads(threads)
    try:
        names = unique_names(files)
        return [
            OnnxBackend(name, path, threads=threads, group=group)
            if path.endswith(".onnx")
            else TorchBackend(name, path, device=device, group=group)
            for name, path in zip(names, files)
        ]
    except RuntimeZooError as e:  # the runtime's error for an .onnx file, said as zoo's
        raise ZooError(str(e)) from None
