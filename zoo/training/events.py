"""Training events, passed to the plugins that log them (the hooks in zoo/core/hookspecs.py).

The trainer tells a `TrainingEvents` what happens; it calls each plugin's hook on its own, with
the arguments that hook asks for, so that a logger that raises is reported once (one
`warning:` line on stderr) and then left out of the run, and training goes on. The one
exception a hook may raise on purpose is `zoo.errors.TrainingStopped` (a sweep pruning a trial).
"""

from __future__ import annotations

import sys
from typing import Any

from zoo.core.errors import TrainingStopped
from zoo.core.registry import Registry


class TrainingEvents:
    """The training hooks of every plugin of `registry`, for one run described by `run`."""

    def __init__(self, registry: Registry, run: dict[str, Any]):
        self.registry, self.run = registry, run
        self.silenced: set[str] = set()  # plugins whose hook raised: left out of the run

    def emit(self, hook_name: str, **arguments: Any) -> None:
        caller = getattr(self.registry.plugin_manager.hook, hook_name)
        arguments["run"] = self.run
        for impl in caller.get_hookimpls():
            if impl.plugin_name in self.silenced:
                continue
            try:
                impl.function(**{name: arguments[name] for name in impl.argnames})
            except TrainingStopped:  # a hook that stops training on purpose (pruning)
                raise
            except Exception as exc:  # a logger must never stop training
                self.silenced.add(impl.plugin_name)
                print(
                    f"warning: plugin {impl.plugin_name!r}: {hook_name} failed "
                    f"({type(exc).__name__}: {exc}); it logs nothing more of this run",
                    file=sys.stderr,
                    flush=True,
                )

    def started(self, total_steps: int, epochs: int, start_step: int) -> None:
        self.run.update(total_steps=total_steps, epochs=epochs, start_step=start_step)
        self.emit("training_started")

    def epoch_ended(self, epoch: int, step: int, train_loss: float, lr: float, seconds: float):
        self.emit(
            "training_epoch_ended",
            epoch=epoch,
            step=step,
            train_loss=train_loss,
            lr=lr,
            seconds=seconds,
        )

    def validated(self, step: int, scores: dict[str, float], improved: bool) -> None:
        self.emit("training_validated", step=step, scores=scores, improved=improved)

    def ended(self, status: str, result: dict[str, Any]) -> None:
        self.emit("training_ended", status=status, result=result)
