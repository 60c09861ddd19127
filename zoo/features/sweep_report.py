"""Inside one trial of `zoo sweep`: report validation scores to the study, stop when pruned.

`zoo sweep` starts each trial as a `zoo run` with `ZOO_SWEEP_TRIAL` set (JSON: the storage
URL, study, trial id and number, the objective's metric, the pruner, and whether this seed
reports). `zoo run` then adds `TrialReporter` to the registry as a plugin (`join_study`): its
`training_validated` hook hands each validation score to Optuna (`trial.report`) and asks the
study's pruner; a hopeless trial raises `TrainingStopped`, which ends the run with status
`pruned` and exit code `PRUNED_EXIT`. The same variable tells the run log which study and
trial a run belongs to. Optuna is imported only when the first score is reported.
"""

from __future__ import annotations

import json
import math
import os
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
    study; outside a sweep, nothing."""
    trial = trial_of_environment()
    if trial is not None:
        registry.add_plugin(TrialReporter(trial), "zoo-sweep-trial", "rnn-zoo", __version__)


class TrialReporter:
    """The default plugin of a sweep trial's `zoo run` (see the module doc)."""

    def __init__(self, trial: dict[str, Any]):
        self.about = trial
        self.trial: Any = None

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
