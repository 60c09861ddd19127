"""Inside one trial of `zoo sweep`: report validation scores to the study, stop when pruned.

`zoo sweep` starts each trial as a `zoo run` with `ZOO_SWEEP_TRIAL` set (JSON: the storage
URL, study, trial id and number, the objective's metric, the pruner, and whether this seed
reports). `zoo run` then adds `TrialReporter` to the registry as a plugin (`join_study`): its
`training_validated` hook hands each validation score to Optuna (`trial.report`) and asks the
study's pruner; a hopeless trial raises `TrainingStopped`, which ends the run with status
`pruned` and exit code `PRUNED_EXIT`. The same variable tells the run log which study and
trial a run belongs to. Optuna is imported only when the first score is reported.

Signals (`TrialSignals`): `zoo sweep` passes Ctrl-C and SIGTERM on to its trials. Until
training has finished, either one interrupts the trial's run (as KeyboardInterrupt outside
the training loop, whose own handler stops it after a step), so its run-log row says
`interrupted`: SIGTERM's default would end the process where it stands and leave the row
`running`, shown `killed`. Once training has finished the trial has its result and is saving
it: a signal then is noted and the run completes, so that a trial that saved its model is
`finished` in the run log and complete in the study, whatever signal came after.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
from typing import Any

from zoo.core.errors import TrainingStopped, UsageError
from zoo.core.hookspecs import hookimpl
from zoo.core.registry import Registry
from zoo.core.version import __version__

ENV = "ZOO_SWEEP_TRIAL"
PRUNED_EXIT = TrainingStopped.exit_code


def trial_of_environment() -> dict[str, Any] | None:
    """The trial this process trains for, from ZOO_SWEEP_TRIAL; None outside a sweep."""
    text = os.environ.get(ENV)
    if not text:
        return None
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or not isinstance(doc.get("trial"), int):
            raise ValueError("not a trial")
    except ValueError:
        raise UsageError(f"{ENV}: expected the JSON `zoo sweep` sets, got {text[:60]!r}") from None
    return doc


def join_study(registry: Registry) -> None:
    """Inside a sweep's trial, add the reporter to `registry`, so training reports to the
    study, and take the signals the sweep passes on (`TrialSignals`); outside a sweep,
    nothing."""
    trial = trial_of_environment()
    if trial is not None:
        reporter = TrialReporter(trial)
        registry.add_plugin(reporter, "zoo-sweep-trial", "rnn-zoo", __version__)
        reporter.signals.install()


class TrialSignals:
    """Ctrl-C and SIGTERM in a sweep's trial (see the module doc): KeyboardInterrupt until
    training has finished, then noted in `received` and otherwise ignored."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.finished = False  # training ended with its result: the run is saving it
        self.received = 0  # a signal that came after, noted

    def install(self) -> None:
        """Take both signals for the rest of the process (only the main thread can)."""
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                signal.signal(signum, self.handle)

    def handle(self, signum: int, frame: Any) -> None:
        if self.finished:
            self.received = self.received or signum
            return
        raise KeyboardInterrupt


class TrialReporter:
    """The default plugin of a sweep trial's `zoo run` (see the module doc)."""

    def __init__(self, trial: dict[str, Any]):
        self.about = trial
        self.trial: Any = None
        self.signals = TrialSignals()

    @hookimpl
    def training_ended(self, status: str) -> None:
        """Training finished: the model is saved next, and no signal stops that now."""
        if status == "finished":
            self.signals.finished = True

    def optuna_trial(self) -> Any:
        """The Optuna trial, joined once: same storage, study and pruner as the sweep."""
        if self.trial is None:
            import optuna

            from zoo.features.sweep_storage import open_storage, pruner

            study = optuna.load_study(
                study_name=self.about["study"],
                storage=open_storage(self.about["storage"]),
                pruner=pruner(self.about.get("pruner", "median"), self.about.get("prune_after", 0)),
            )
            self.trial = optuna.trial.Trial(study, self.about["trial_id"])
        return self.trial

    @hookimpl
    def training_validated(self, step: int, scores: dict[str, Any]) -> None:
        value = scores.get(self.about["metric"])
        if not self.about.get("report", True) or not isinstance(value, (int, float)):
            return
        if not math.isfinite(value):
            return
        trial = self.optuna_trial()
        trial.report(float(value), step)
        if trial.should_prune():
            raise TrainingStopped(
                f"pruned at step {step}: valid {self.about['metric']} {value:.6g} is behind "
                "the median of earlier trials"
            )
