"""`zoo sweep`: hyperparameter search on Optuna, one machine or many sharing a database.

Optuna does the searching (TPE sampler, median pruner, the study in an RDB storage: SQLite by
default, PostgreSQL across machines); zoo supplies the objective. Each trial is one `zoo run`
process per seed, started with a run file (`trial-N.toml`) that reproduces it, one thread
each, so that a trial that crashes or runs out of memory takes nothing else down and is in the
run log like any other run. `--jobs J` runs J trials at once: J threads, each running Optuna's
own optimisation loop against the shared storage, exactly as J machines would.

`--trials N` is exact, however many threads and machines share the study: a thread asks
for a trial only while the storage holds fewer than N counted trials, one thread of a
process at a time, and a trial handed out past N all the same (another machine asked at
that moment) is given back unrun before its `zoo run` starts (see `Sweep.objective`). A
finished or pruned trial always counts; only a failed one stopped by a signal is made up for
by a rerun. A trial whose `zoo run` saved its model is complete, whatever signal came after
(the run may be ended by it on its way out): its score is read from what it saved.

`--sampler-seed S` seeds the sampler for each trial from S and the trial's number
(`TrialSeededSampler`), so a sweep stopped and run again goes on where it stopped instead
of starting its sequence over, and trial N tries what it would have in one go.

Pruning: the trial's `zoo run` reports its validation scores to the study itself (the
`TrialReporter` plugin of zoo/features/sweep_report.py, switched on by an environment variable) and
stops when the median pruner says so; `zoo run` then exits 3 and the trial is PRUNED.

Files: the trials' run files, logs and model files go to a folder per study (`--models`,
by default `sweeps/STUDY/` in zoo's data folder); once a trial ends, the model files of every
finished trial but the best are removed, so the best model is always kept. This module
imports Optuna at the top: only `zoo sweep` and a trial's reporter import it.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from zoo.core.errors import UsageError, ZooError
from zoo.core.formatting import fmt
from zoo.features import runconfig
from zoo.features.subprocesses import (
    Children,
    SignalsPassedOn,
    last_error_line,
    wait_for,
    zoo_command,
)
from zoo.features.sweep_report import ENV, PRUNED_EXIT
from zoo.features.sweep_space import Dimension
from zoo.features.sweep_storage import open_storage, pruner

FAILURES_IN_A_ROW = 3  # this many failed trials and nothing finished: stop, say why
INTERRUPTED = "interrupted"  # user attribute of a trial stopped by Ctrl-C (not counted)
GIVEN_BACK = "given_back"  # user attribute of a trial handed out past --trials (never run)


class TrialFailed(Exception):
    """A trial's `zoo run` failed (or diverged); the study records it FAIL and goes on."""


class TrialInterrupted(Exception):
    """A trial stopped by Ctrl-C; recorded FAIL, not counted, run again by a rerun."""


class TrialGivenBack(Exception):
    """A trial handed out when the study already had --trials counted ones (machines asking
    at the same moment): recorded FAIL, never run, neither counted nor reported."""


# --------------------------------------------------------------------------------- plan
@dataclass
class Plan:
    """Everything a sweep needs, from the command line and run file, checked."""

    architecture: str
    dataset: str
    options: dict[str, Any]  # run-file options shared by every trial (data, epochs, ...)
    fixed: dict[str, Any]  # settings every trial takes
    space: dict[str, Dimension]
    metric: str
    direction: str  # minimize | maximize
    seeds: list[int]
    threads: int
    trials: int
    jobs: int
    study: str
    storage: str
    folder: Path
    pruner: str = "median"
    prune_after: int = 0  # steps of a trial before it may be pruned
    no_log: bool = False
    sampler_seed: int | None = None
    headline: tuple[str, ...] = ()  # the architecture's headline metrics, shown per trial
    echo: Callable[[str], None] = print

    def identity(self) -> dict[str, Any]:
        """What a study is for: a rerun must match it (paths and trial counts may differ)."""
        from zoo.features.sweep_space import described

        return {
            "architecture": self.architecture,
            "dataset": self.dataset,
            "space": described(self.space),
            "fixed": {k: str(v) for k, v in sorted(self.fixed.items())},
            "metric": self.metric,
            "seeds": self.seeds,
        }


def open_study(plan: Plan) -> optuna.Study:
    """Create the study, or join the one of that name made for the same search."""
    storage = open_storage(plan.storage)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # zoo says how each trial ended
    study = optuna.create_study(
        study_name=plan.study,
        storage=storage,
        direction=plan.direction,
        sampler=sampler(plan.sampler_seed),
        pruner=pruner(plan.pruner, plan.prune_after),
        load_if_exists=True,
    )
    if study.direction.name.lower() != plan.direction:
        raise UsageError(f"study {plan.study!r} was made to {study.direction.name.lower()}")
    made_for = study.user_attrs.get("zoo")
    if made_for is None:
        study.set_user_attr("zoo", plan.identity())
    elif made_for != plan.identity():
        raise UsageError(_mismatch(plan.study, made_for, plan.identity()))
    return study


def sampler(seed: int | None) -> optuna.samplers.BaseSampler:
    """Optuna's TPE sampler; with a seed, seeded for each trial (`TrialSeededSampler`)."""
    return tpe(None) if seed is None else TrialSeededSampler(seed)


def tpe(seed: int | None) -> optuna.samplers.TPESampler:
    """TPE, with the running trials' settings taken as already tried (several at once)."""
    with warnings.catch_warnings():  # constant_liar is "experimental" in Optuna's words
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(constant_liar=True, seed=seed)


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """TPE seeded afresh for each trial, from the sweep's seed and the trial's number. Seeded
    once per `zoo sweep`, a rerun of a stopped sweep started the sequence over and its
    trials repeated the first ones' settings exactly; seeded per trial, trial N's settings
    depend on the seed, N and the trials finished before it, so a sweep stopped and run
    again tries what one run in one go would, and machines sharing a study draw apart."""

    def __init__(self, seed: int):
        self.seed = seed
        self.samplers: dict[int, optuna.samplers.TPESampler] = {}
        self.lock = threading.Lock()

    def of(self, trial: optuna.trial.FrozenTrial) -> optuna.samplers.TPESampler:
        """The trial's own sampler, seeded from (seed, trial number)."""
        import numpy

        with self.lock:
            if trial.number not in self.samplers:
                state = numpy.random.SeedSequence([self.seed, trial.number]).generate_state(1)
                self.samplers[trial.number] = tpe(int(state[0]))
            return self.samplers[trial.number]

    def infer_relative_search_space(self, study: optuna.Study, trial: Any) -> dict[str, Any]:
        return self.of(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: Any, space: dict[str, Any]) -> dict:
        return self.of(trial).sample_relative(study, trial, space)

    def sample_independent(self, study: optuna.Study, trial: Any, name: str, dist: Any) -> Any:
        return self.of(trial).sample_independent(study, trial, name, dist)

    def before_trial(self, study: optuna.Study, trial: Any) -> None:
        self.of(trial).before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: Any, state: Any, values: Any) -> None:
        self.of(trial).after_trial(study, trial, state, values)
        with self.lock:
            self.samplers.pop(trial.number, None)

    def reseed_rng(self) -> None:
        """Nothing: each trial's seed is fixed by the sweep's seed and its number."""


def _mismatch(name: str, made_for: dict[str, Any], wanted: dict[str, Any]) -> str:
    differing = [key for key in wanted if made_for.get(key) != wanted[key]]
    key = differing[0] if differing else "settings"
    return (
        f"study {name!r} was made for another search ({key}: {made_for.get(key)} there, "
        f"{wanted.get(key)} here); run the same search to continue it, or name a new "
        "study with --study"
    )


def counted(study: optuna.Study, before: int | None = None) -> int:
    """Trials that count toward --trials: finished, pruned, failed or running, but not
    failed ones stopped by Ctrl-C (a rerun makes up for them) nor those given back unrun;
    a finished or pruned trial always counts. With `before`, only the trials numbered
    below it."""
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
    trials = study.get_trials(deepcopy=False, states=states)
    if before is not None:
        trials = [t for t in trials if t.number < before]
    return sum(1 for t in trials if counts(t))


def counts(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether the trial is one of the --trials: a rerun makes up for the others."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return not trial.user_attrs.get(INTERRUPTED) and not given_back(trial)


def given_back(trial: optuna.trial.FrozenTrial) -> bool:
    """Handed out past --trials and given back without running: no part of the search."""
    return bool(trial.user_attrs.get(GIVEN_BACK))


# -------------------------------------------------------------------------------- sweep
@dataclass
class Sweep:
    """One process's part of a study: `jobs` threads running trials until --trials."""

    plan: Plan
    study: optuna.Study
    children: Children = field(default_factory=Children)
    lock: threading.Lock = field(default_factory=threading.Lock)
    asking: threading.Lock = field(default_factory=threading.Lock)  # see `work`
    held: threading.local = field(default_factory=threading.local)  # this thread holds asking
    interrupted: int = 0  # the signal that stopped the sweep
    failures_in_a_row: int = 0
    last_error: str | None = None
    crash: BaseException | None = None  # what ended a thread other than a trial's outcome

    def run(self) -> None:
        """Run trials on `jobs` threads until the study has --trials; Ctrl-C stops them. What
        broke a thread (the storage, say) is raised here, once, after the others stopped."""
        left = self.plan.trials - counted(self.study)
        threads = [
            threading.Thread(target=self.work, name=f"zoo-sweep-{i}", daemon=True)
            for i in range(min(self.plan.jobs, left))  # no more threads than trials left
        ]
        with SignalsPassedOn(self.children, on_stop=self.stop):
            wait_for(threads)
        if self.crash is not None:
            raise self.crash

    def work(self) -> None:
        """One thread's trials; an exception that ends it stops the others, and `run`
        raises it (a thread's traceback would be printed, and the sweep exit 0)."""
        try:
            self.trials()
        except BaseException as e:
            with self.lock:
                self.crash = self.crash or e

    def trials(self) -> None:
        """Optuna's optimisation loop one trial at a time, as a worker on another machine
        runs it, while another trial is wanted. Counting the study's trials and asking for a
        new one is one step: the thread holds `asking` from the count until its new trial
        is in the storage (`objective` lets go), so two threads ending trials together
        cannot both see room for one more and both start one."""
        while True:
            self.asking.acquire()
            self.held.asking = True
            try:
                if not self.another_wanted():
                    return
                self.study.optimize(
                    self.objective,
                    n_trials=1,
                    callbacks=[self.trial_ended],
                    catch=(TrialFailed, TrialInterrupted, TrialGivenBack),
                )
            finally:
                self.let_go()  # when Optuna failed before the trial began

    def let_go(self) -> None:
        """This thread's new trial is in the storage (or none will be): others may ask."""
        if getattr(self.held, "asking", False):
            self.held.asking = False
            self.asking.release()

    def another_wanted(self) -> bool:
        """Not stopped (Ctrl-C, failures in a row) and the study, every machine's trials
        read from the storage, still short of --trials."""
        if self.stopping() or self.failing() or self.crash is not None:
            return False
        return counted(self.study) < self.plan.trials

    def failing(self) -> bool:
        """Failed trials in a row, and no trial between: the next would most likely fail
        too (a missing data file, a bad setting), so the sweep stops and says why."""
        return self.failures_in_a_row >= max(FAILURES_IN_A_ROW, self.plan.jobs)

    def stop(self, signum: int) -> None:
        """Ctrl-C (or SIGTERM): no new trials; the running ones are told and end interrupted,
        but for those past training, which save their model and finish."""
        if not self.interrupted:
            self.plan.echo(
                "stopping: the running trials end now, interrupted (those done training "
                "save their model first)"
            )
        self.interrupted = signum  # each thread's loop stops after its trial (another_wanted)

    def stopping(self) -> bool:
        """A signal came: to the sweep (`stop`), or to its children first, a moment before."""
        return bool(self.interrupted or self.children.stopped)

    # ---------------------------------------------------------------------- a trial
    def objective(self, trial: optuna.Trial) -> float:
        """The trial's value: the mean validation score of its seeds' `zoo run`s. First, now
        that the trial is in the storage, it must be among the first --trials counted ones
        by number: trials are numbered in the order the storage made them (Optuna makes them
        one at a time), so every lower-numbered trial is visible here and, of trials asked
        at once by many machines, exactly those past the limit are given back unrun."""
        self.let_go()
        if counted(self.study, before=trial.number) >= self.plan.trials:
            trial.set_user_attr(GIVEN_BACK, True)
            raise TrialGivenBack(f"trial {trial.number}: the study has --trials already")
        values = {key: dim.suggest(trial) for key, dim in self.plan.space.items()}
        scores = [
            self.train(trial, values, seed, report=i == 0) for i, seed in enumerate(self.plan.seeds)
        ]
        if len(scores) > 1:
            trial.set_user_attr("seed_values", scores)
        return statistics.fmean(scores)

    def train(self, trial: optuna.Trial, values: dict[str, Any], seed: int, report: bool) -> float:
        """One `zoo run` of the trial, on one seed; its validation score. A run that saved
        its model is scored whatever its exit code: a signal passed on as it ended, after
        it saved, ends the process all the same."""
        paths = trial_paths(self.plan, trial.number, seed)
        runconfig_text = trial_run_file(self.plan, values, seed, paths["model"])
        paths["config"].write_text(runconfig_text, encoding="utf-8")
        trial.set_user_attr("models", [*trial.user_attrs.get("models", []), str(paths["model"])])
        if self.stopping():
            raise self.interruption(trial)
        paths["metrics"].unlink(missing_ok=True)  # the score is this run's, never an older file's
        before = file_identity(paths["model"])
        code = self.start_and_wait(trial, paths, report)
        saved = saved_result(paths, before)
        if saved is not None:
            return self.score_of(trial, saved, paths["metrics"])
        error = last_error_line(paths["log"])
        if self.stopping():
            raise self.interruption(trial)
        trial.set_user_attr("error", error if code else f"no result: {error}")
        if code == PRUNED_EXIT:
            raise optuna.TrialPruned(error)
        raise TrialFailed(trial.user_attrs["error"])

    def start_and_wait(self, trial: optuna.Trial, paths: dict[str, Path], report: bool) -> int:
        # the trial's run file says everything: a user's ZOO_RUN_* variables must not change it
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_RUN_")}
        env[ENV] = json.dumps(
            {
                "storage": self.plan.storage,
                "study": self.plan.study,
                "trial_id": trial._trial_id,
                "trial": trial.number,
                "metric": self.plan.metric,
                "pruner": self.plan.pruner,
                "prune_after": self.plan.prune_after,
                "report": report,
            }
        )
        command = zoo_command("run", "--config", str(paths["config"]), "-q")
        command += ["--metrics-out", str(paths["metrics"])]
        return self.children.run(
            command + (["--no-log"] if self.plan.no_log else []), paths["log"], env
        )

    def interruption(self, trial: optuna.Trial) -> TrialInterrupted:
        trial.set_user_attr(INTERRUPTED, True)
        return TrialInterrupted(f"trial {trial.number} interrupted")

    def score(self, trial: optuna.Trial, metrics_file: Path) -> float:
        """The validation score in a run's metrics file (`--metrics-out`)."""
        doc = json.loads(metrics_file.read_text(encoding="utf-8"))
        return self.score_of(trial, doc, metrics_file)

    def score_of(self, trial: optuna.Trial, doc: dict[str, Any], metrics_file: Path) -> float:
        """The validation score in a run's result (`metrics.valid`), kept with its headline."""
        value = (doc.get("metrics", {}).get("valid") or {}).get(self.plan.metric)
        if not isinstance(value, (int, float)):
            error = (
                f"no validation {self.plan.metric} in {metrics_file}: a sweep needs a valid split"
            )
            trial.set_user_attr("error", error)
            raise TrialFailed(error)
        self.record_headline(trial, doc["metrics"]["valid"])
        return float(value)

    def record_headline(self, trial: optuna.Trial, valid: dict[str, Any]) -> None:
        """The trial's headline validation metrics (the architecture's headline, else its
        objective), the mean over the seeds so far, kept for `zoo sweep show` and its line."""
        names = self.plan.headline or (self.plan.metric,)
        seeds = [
            *trial.user_attrs.get("valid_seeds", []),
            {k: valid[k] for k in names if isinstance(valid.get(k), (int, float))},
        ]
        trial.set_user_attr("valid_seeds", seeds)
        shown = {k: [s[k] for s in seeds if k in s] for k in names}
        trial.set_user_attr("valid", {k: statistics.fmean(v) for k, v in shown.items() if v})

    # ------------------------------------------------------------- after each trial
    def trial_ended(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Say how it went, keep the best model files only, and count failures in a row
        (`another_wanted` stops at too many); a trial given back unrun is none of these."""
        if given_back(trial):
            return
        self.plan.echo(trial_line(trial, study, self.plan.metric))
        failed = trial.state == TrialState.FAIL and not trial.user_attrs.get(INTERRUPTED)
        with self.lock:
            remove_unneeded_models(study, self.plan.folder)
            self.failures_in_a_row = self.failures_in_a_row + 1 if failed else 0
            if failed:
                self.last_error = trial.user_attrs.get("error")


def file_identity(path: Path) -> tuple[int, int, int] | None:
    """What tells a file written now from the one there before (a model is saved by
    renaming a new file over it): inode, modification time, size; None when absent."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def saved_result(paths: dict[str, Path], model_before: Any) -> dict[str, Any] | None:
    """The result of a trial's `zoo run` that saved its model, however the process ended:
    its metrics file (written after the model), else the metrics in the model file it
    saved; None when it saved nothing (it failed, was pruned, or was stopped in time)."""
    try:
        return json.loads(paths["metrics"].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    if file_identity(paths["model"]) in (None, model_before):
        return None
    from zoo.core.modelfile import read_info

    try:
        return {"metrics": read_info(paths["model"]).get("metrics") or {}}
    except ZooError:
        return None


def trial_paths(plan: Plan, number: int, seed: int) -> dict[str, Path]:
    """Where a trial's run file, log, metrics and model go (one set per seed)."""
    stem = f"trial-{number}" + (f"-seed{seed}" if len(plan.seeds) > 1 else "")
    return {
        "config": plan.folder / f"{stem}.toml",
        "log": plan.folder / f"{stem}.log",
        "metrics": plan.folder / f"{stem}.json",
        "model": plan.folder / f"{stem}.safetensors",
    }


def trial_run_file(plan: Plan, values: dict[str, Any], seed: int, model: Path) -> str:
    """A run file for `zoo run --config` that reproduces the trial on this seed."""
    from zoo.features.runconfig import toml_value

    options = {"architecture": plan.architecture, "dataset": plan.dataset, **plan.options}
    options.update(seed=seed, threads=plan.threads, out=str(model))
    lines = ["# one trial of `zoo sweep`: zoo run --config FILE reproduces it"]
    lines += [f"{key} = {toml_value(v)}" for key, v in options.items() if v is not None]
    lines += ["", f"[{runconfig.SETTINGS}]"]
    settings = {**plan.fixed, **values}
    lines += [f"{_toml_key(key)} = {toml_value(v)}" for key, v in settings.items()]
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    """A bare key where TOML allows one (`model.hidden_size` is a dotted key, read back as the
    same setting), else a quoted one."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*", key) else json.dumps(key)


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no finished trial yet
        return None


def remove_unneeded_models(study: optuna.Study, folder: Path) -> None:
    """Model files of finished trials other than the best (all tied for it) are removed, as
    one reading of the study records them: a trial finishing meanwhile, better than the
    best read a moment before, is not in that reading. Any other trial's file stays (a
    failed or stopped trial normally has none: one it has, its record and its run disagree,
    is kept). Only this machine's files: each machine keeps its own."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    values = [t.value for t in complete if t.value is not None]
    if not values:
        return
    best = min(values) if study.direction == optuna.study.StudyDirection.MINIMIZE else max(values)
    keep = {m for t in complete if t.value == best for m in t.user_attrs.get("models", [])}
    for trial in complete:
        for model in trial.user_attrs.get("models", []):
            if model not in keep and Path(model).parent == folder:
                Path(model).unlink(missing_ok=True)


def trial_line(trial: optuna.trial.FrozenTrial, study: optuna.Study, metric: str) -> str:
    """`trial 4 finished: valid mse 0.0523 (best) lr=0.003 hidden_size=128`, with the
    architecture's other headline metrics after the objective's."""
    settings = " ".join(f"{k}={fmt(v)}" for k, v in trial.params.items())
    if trial.state == TrialState.COMPLETE:
        best = best_trial(study)
        mark = " (best so far)" if best is not None and best.number == trial.number else ""
        others = trial.user_attrs.get("valid") or {}
        more = "".join(f", {k} {fmt(v)}" for k, v in others.items() if k != metric)
        return (
            f"trial {trial.number} finished: valid {metric} {fmt(trial.value)}{more}{mark} "
            f"{settings}"
        )
    if trial.state == TrialState.PRUNED:
        return f"trial {trial.number} pruned: {trial.user_attrs.get('error', '')} {settings}"
    if trial.user_attrs.get(INTERRUPTED):
        return f"trial {trial.number} interrupted {settings}"
    return f"trial {trial.number} failed: {trial.user_attrs.get('error', '?')} {settings}"
