"""The run's optimizer, and its step without importing torch._dynamo.

torch wraps the optimizer's entry points for its compiler: `Optimizer.step` imports
torch._dynamo on every call (to mark graph breaks), and `add_param_group`, `zero_grad`,
`state_dict`, `load_state_dict` and the functional `adam` import it on their first call (to
exclude themselves from compilation). Outside a compiled region neither does anything else,
but the import costs about 0.9 s, in every `zoo run`, every sweep trial and every rank: on
EWT with prepared data, more than a third of the time from the command to the first training
step (docs/results/data.md). zoo compiles nothing, so where no one in the process has
imported torch._dynamo, zoo calls the functions under those wrappers, which is what the
wrappers call themselves: the same arithmetic, the same weights to the bit
(tests/core/test_trainer.py). Once something has imported torch._dynamo (a plugin that
compiles), the wrappers run as torch has them; a torch whose wrappers look different is left
alone too.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any

import torch

from zoo.core.settings import TrainConfig

DYNAMO = "torch._dynamo"


def make_optimizer(module: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The run's optimizer over the trainable parameters. `foreach`, torch's default on GPUs
    only, everywhere: one call updates every tensor, where the per-tensor loop torch picks on
    a CPU pays Python's price per tensor and per operation (the EWT tagger's Adam step, 28
    tensors, one thread: 12.9 against 15.7 ms), with the very same weights
    (tests/core/test_trainer.py)."""
    _unwrap_first_calls()
    params = [p for p in module.parameters() if p.requires_grad]
    betas = (0.9, cfg.adam_beta2)
    common = {"lr": cfg.lr, "weight_decay": cfg.weight_decay, "foreach": True}
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, betas=betas, **common)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, betas=betas, **common)
    return torch.optim.SGD(params, momentum=0.9, **common)


def step(optimizer: torch.optim.Optimizer) -> None:
    """`optimizer.step()`; without its torch._dynamo import where that is all the wrapper
    would add: no step hooks, not differentiable, torch._dynamo not imported (module
    docstring). What the wrapper does besides, gradients off during the step, is done here."""
    raw = _plain_step(optimizer)
    if raw is None:
        optimizer.step()
        return
    with torch.no_grad():
        raw(optimizer)


def _plain_step(optimizer: torch.optim.Optimizer) -> Callable[..., Any] | None:
    if DYNAMO in sys.modules or optimizer.defaults.get("differentiable"):
        return None
    hooks = sys.modules.get("torch.optim.optimizer")
    if (
        getattr(optimizer, "_optimizer_step_pre_hooks", True)
        or getattr(optimizer, "_optimizer_step_post_hooks", True)
        or getattr(hooks, "_global_optimizer_pre_hooks", True)
        or getattr(hooks, "_global_optimizer_post_hooks", True)
    ):
        return None
    return _unwrapped_step(type(optimizer))


@functools.cache
def _unwrapped_step(kind: type) -> Callable[..., Any] | None:
    """The step under torch's wrappers of an optimizer class, found once (not at every
    training step); None where the class's step is not wrapped."""
    raw = inspect.unwrap(kind.step)
    return None if raw is kind.step else raw


def _unwrap_first_calls() -> None:
    """Mark the functions under torch's lazy `_disable_dynamo` wrappers as their own
    disabled version, which the wrapper otherwise imports torch._dynamo to make on its first
    call; only while no one has imported torch._dynamo (module docstring)."""
    if DYNAMO in sys.modules:
        return
    import torch.optim.adam  # the functional adam, which AdamW calls too

    base = torch.optim.Optimizer
    wrapped = [base.add_param_group, base.zero_grad, base.state_dict, base.load_state_dict]
    wrapped.append(sys.modules["torch.optim.adam"].adam)
    for function in wrapped:
        raw = getattr(function, "__wrapped__", None)
        if raw is not None and not hasattr(raw, "__dynamo_disable"):
            setattr(raw, "__dynamo_disable", raw)
