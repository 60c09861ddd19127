"""Calls into a plugin's network, checked: an exception or a wrong return type becomes a
PluginError that names the architecture and its distribution, instead of a traceback deep in
zoo.

The original exception stays chained (`raise ... from`), and `ZOO_DEBUG=1` makes the command
line show the full traceback, for the plugin's author.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from zoo.core.errors import PluginError, ZooError, out_of_memory
from zoo.toolkit.metrics import Tally
from zoo.toolkit.network import Network


def _loss(out: Any) -> str | None:
    if not isinstance(out, torch.Tensor) or out.numel() != 1:
        return f"{type(out).__name__}, not a one-element tensor"
    if torch.is_grad_enabled() and not out.requires_grad:  # under no_grad, none would
        return "a tensor that does not require grad (is it detached?)"
    return None


def _metrics(out: Any) -> str | None:
    if not isinstance(out, dict):
        return f"{type(out).__name__}, not a dict of metrics"
    for key, value in out.items():
        if not isinstance(key, str):
            return f"a metric named {key!r}, not a string"
        if key == "confusion" and isinstance(value, dict):  # zoo.metrics.Confusion's matrix
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"metric {key!r} = {type(value).__name__}, not a number"
    return None


def _tally(out: Any) -> str | None:
    return None if isinstance(out, Tally) else f"{type(out).__name__}, not a zoo.metrics.Tally"


def _tensors(out: Any) -> str | None:
    if not isinstance(out, dict):
        return f"{type(out).__name__}, not a dict of tensors"
    for key, value in out.items():
        if not isinstance(key, str) or "/" in key or not isinstance(value, torch.Tensor):
            return f"{key!r}: {type(value).__name__}, not a tensor named without '/'"
    return None


def _predictions(out: Any) -> str | None:
    if not isinstance(out, list) or not all(isinstance(p, dict) for p in out):
        return f"{type(out).__name__}, not a list of dicts"
    return None


def _file_predictions(out: Any) -> str | None:
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], str)):
        return f"{type(out).__name__}, not (text, predictions)"
    return _predictions(out[1])


def _network(out: Any) -> str | None:
    if isinstance(out, Network):
        return None
    if isinstance(out, torch.nn.Module):
        return f"{type(out).__name__}, a torch.nn.Module but not a zoo.Network"
    return f"{type(out).__name__}, not a zoo.Network"


def call(what: str, name: str, function: Callable[..., Any], *args: Any, check: Any = None) -> Any:
    """`function(*args)`, with its failures and a wrong result (per `check`) named."""
    try:
        out = function(*args)
    except ZooError:
        raise
    except Exception as e:
        raise out_of_memory(e) or PluginError(
            f"{what} failed in {name}: {type(e).__name__}: {e}"
        ) from e
    problem = check(out) if check is not None else None
    if problem is not None:
        raise PluginError(f"{what}: {name} returned {problem}")
    return out


def build(what: str, factory: Callable[..., Any], config: Any, state: dict[str, Any]) -> Network:
    """The plugin's network, built from its config and the data state."""
    return call(what, "building the network", factory, config, state, check=_network)


class Checked:
    """A network's zoo methods, called so that a failure names the plugin (`what`)."""

    def __init__(self, network: Network, what: str):
        self.network, self.what = network, what

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        return call(self.what, "loss", self.network.loss, batch, check=_loss)

    def evaluate(self, batches: Iterable[dict[str, Any]]) -> dict[str, Any]:
        return call(self.what, "evaluate", self.network.evaluate, batches, check=_metrics)

    def tally(self, batches: Iterable[dict[str, Any]]) -> Tally:
        return call(self.what, "tally", self.network.tally, batches, check=_tally)

    def score(self, tally: Tally) -> dict[str, Any]:
        return call(self.what, "score", self.network.score, tally, check=_metrics)

    def predict(self, inputs: list[str], options: Any) -> list[dict[str, Any]]:
        return call(self.what, "predict", self.network.predict, inputs, options, check=_predictions)

    def predict_file(self, file: Any, options: Any) -> tuple[str, list[dict[str, Any]]]:
        run = self.network.predict_file
        return call(self.what, "predict_file", run, file, options, check=_file_predictions)

    def initialise(self, data: Any) -> None:
        call(self.what, "initialise", self.network.initialise, data)

    def calibrate(self, data: Any) -> None:
        call(self.what, "calibrate", self.network.calibrate, data)

    def carried_state(self) -> dict[str, torch.Tensor]:
        return call(self.what, "carried_state", self.network.carried_state, check=_tensors)

    def load_carried_state(self, tensors: dict[str, torch.Tensor]) -> None:
        call(self.what, "load_carried_state", self.network.load_carried_state, tensors)
