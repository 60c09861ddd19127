"""Calls into plugin code, checked: an exception or a wrong return type becomes a PluginError
that names the architecture and its distribution, instead of a traceback deep in zoo.

The original exception stays chained (`raise ... from`), and `ZOO_DEBUG=1` makes the command
line show the full traceback, for the plugin's author.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from zoo.errors import PluginError, ZooError


def _module(out: Any) -> str | None:
    return (
        None if isinstance(out, torch.nn.Module) else f"{type(out).__name__}, not a torch.nn.Module"
    )


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
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"metric {key!r} = {type(value).__name__}, not a number"
    return None


def _predictions(out: Any) -> str | None:
    if not isinstance(out, list) or not all(isinstance(p, dict) for p in out):
        return f"{type(out).__name__}, not a list of dicts"
    return None


def _file_predictions(out: Any) -> str | None:
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], str)):
        return f"{type(out).__name__}, not (text, predictions)"
    return _predictions(out[1])


CHECKS: dict[str, Callable[[Any], str | None]] = {
    "build": _module,
    "loss": _loss,
    "evaluate": _metrics,
    "predict": _predictions,
    "predict_file": _file_predictions,
}


class GuardedImplementation:
    """Wraps an architecture's implementation; other attributes pass straight through."""

    def __init__(self, impl: Any, what: str):
        self._impl = impl
        self._what = what

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._impl, name)  # AttributeError passes through, so hasattr() works
        if name not in CHECKS or not callable(value):
            return value
        check, what = CHECKS[name], self._what

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                out = value(*args, **kwargs)
            except ZooError:
                raise
            except Exception as e:
                raise PluginError(f"{what} failed in {name}: {type(e).__name__}: {e}") from e
            problem = check(out)
            if problem is not None:
                raise PluginError(f"{what}: {name} returned {problem}")
            return out

        self.__dict__[name] = guarded  # cache: the training loop calls loss at every step
        return guarded

    def __repr__(self) -> str:
        return f"<guarded {self._impl!r}>"
