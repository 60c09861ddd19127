"""`zoo sweep` and signals: a trial that saved its model is complete whatever signal comes
after, a trial stopped by one is `interrupted` everywhere, and a rerun of a stopped sweep
trains exactly the trials still missing.

The races are made deterministic two ways: in-process, a `Sweep` whose trials start no
process (their "child" writes its files and exits as a real one would, the signal taken at
a chosen moment); and end to end, a real sweep whose trials' `zoo run` send SIGTERM to the
sweep at a chosen point and wait until the sweep has passed it back to them.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.core.test_sweep import load, log_rows, quick_plan, sqlite_url

optuna = pytest.importorskip("optuna", reason="zoo sweep needs the sweep extra (optuna)")


# ------------------------------------------------------------------- in-process trials
def scripted_sweep(plan: Any, child: Any) -> Any:
    """A `Sweep` whose trials' `zoo run` is `child(sweep, trial, paths)`: it writes what
    the run would (model, metrics) and returns its exit code. `saved` lists the trials whose
    run saved a model: what the run log would show as `finished`."""
    from zoo.features.sweep import Sweep, open_study

    class Scripted(Sweep):
        def start_and_wait(self, trial: Any, paths: dict[str, Path], report: bool) -> int:
            return child(self, trial, paths)

    sweep = Scripted(plan, open_study(plan))
    sweep.saved = []
    return sweep


def save(sweep: Any, trial: Any, paths: dict[str, Path]) -> None:
    """What a `zoo run` that finished writes: its model, then its metrics."""
    paths["model"].write_bytes(b"a model")
    valid = {"mse": float(trial.params["lr"])}
    paths["metrics"].write_text(json.dumps({"metrics": {"valid": valid}}), encoding="utf-8")
    sweep.saved.append(trial.number)


def test_a_trial_that_saved_its_model_is_complete_whatever_signal_came_after(tmp_path):
    """SIGTERM reached the sweep as the trial's `zoo run` ended: the run had saved its model
    (the run log says `finished`) when the signal passed on to it ended the process (exit
    143). Was: the trial FAIL `interrupted`, and its model file deleted as a failed trial's."""

    def saved_then_signalled(sweep: Any, trial: Any, paths: dict[str, Path]) -> int:
        save(sweep, trial, paths)
        sweep.stop(signal.SIGTERM)  # the sweep's handler: no new trials
        return 128 + signal.SIGTERM  # the signal passed on, after the model was saved

    lines: list[str] = []
    plan = quick_plan(tmp_path, "saved", trials=3, jobs=1)
    plan.echo = lines.append
    sweep = scripted_sweep(plan, saved_then_signalled)
    sweep.run()
    [trial] = load(plan.storage, "saved").get_trials()
    assert trial.state.name == "COMPLETE" and "interrupted" not in trial.user_attrs
    assert trial.value == pytest.approx(trial.params["lr"])
    assert (tmp_path / "trial-0.safetensors").exists()
    assert sweep.interrupted and " finished: " in lines[-1]


def test_the_model_of_a_trial_the_study_does_not_call_finished_is_kept(tmp_path):
    """Only the models of finished trials other than the best are removed: a trial the
    study records failed or interrupted keeps whatever file it left (its record and its run
    disagree: the file is the evidence), and the best trial's file stays."""
    from zoo.features.sweep import INTERRUPTED, remove_unneeded_models

    plan = quick_plan(tmp_path, "keep", trials=3, jobs=1)
    study = optuna.create_study(study_name="keep", storage=plan.storage)
    files = [tmp_path / f"trial-{n}.safetensors" for n in range(3)]
    for n, (state, value) in enumerate([("COMPLETE", 1.0), ("COMPLETE", 2.0), ("FAIL", None)]):
        trial = study.ask()
        files[n].write_bytes(b"a model")
        trial.set_user_attr("models", [str(files[n])])
        if state == "FAIL":
            trial.set_user_attr(INTERRUPTED, True)
        study.tell(trial, value, state=getattr(optuna.trial.TrialState, state))
    remove_unneeded_models(study, tmp_path)
    assert [f.exists() for f in files] == [True, False, True]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # a trial asked for by hand
def test_a_trial_whose_run_was_refused_after_the_signal_is_interrupted(tmp_path):
    """The signal handler tells the children first: a trial whose `zoo run` was refused
    then (Children.run says 143 at once) was recorded FAIL with `no output`, counted,
    before the sweep itself knew it was stopped."""
    from zoo.features.sweep import Sweep, TrialInterrupted, open_study

    plan = quick_plan(tmp_path, "refused", trials=1, jobs=1)
    sweep = Sweep(plan, open_study(plan))
    sweep.children.stop(signal.SIGTERM)  # the handler's first step; `stop` not yet called
    trial = sweep.study.ask()
    with pytest.raises(TrialInterrupted):
        sweep.train(trial, {"lr": 0.01}, seed=0, report=True)
    assert trial.user_attrs.get("interrupted") is True


def test_a_rerun_of_a_signalled_sweep_trains_exactly_the_trials_asked_for(tmp_path):
    """--jobs 2 --trials 5, stopped by SIGTERM as trial 2 ended (its model saved) while
    another was training, then run again: every trial that saved a model is one of the 5
    complete trials. Was: the saved trial was recorded interrupted, run again, and the run
    log ended with 6 finished trials for --trials 5."""

    def first(sweep: Any, trial: Any, paths: dict[str, Path]) -> int:
        if sweep.interrupted:
            return 128 + signal.SIGTERM  # stopped mid-training: nothing saved
        save(sweep, trial, paths)
        if trial.number == 2:
            sweep.children.stop(signal.SIGTERM)
            sweep.stop(signal.SIGTERM)
            return 128 + signal.SIGTERM
        return 0

    def again(sweep: Any, trial: Any, paths: dict[str, Path]) -> int:
        save(sweep, trial, paths)
        return 0

    plan = quick_plan(tmp_path, "rerun", trials=5, jobs=2)
    stopped = scripted_sweep(plan, first)
    stopped.run()
    rerun = scripted_sweep(plan, again)
    rerun.run()
    trials = load(plan.storage, "rerun").get_trials()
    complete = sorted(t.number for t in trials if t.state.name == "COMPLETE")
    assert len(complete) == 5
    assert sorted(stopped.saved + rerun.saved) == complete


# --------------------------------------------------------------------- end to end
CHILD = textwrap.dedent(
    """
    # A trial's `zoo run`, which at one point sends SIGTERM to its sweep (as `kill` would)
    # and takes the signal the sweep passes on to it right there.
    import os, signal, sys, time

    import zoo.api, zoo.cli.runlog, zoo.training.trainer
    from zoo.cli import main

    def the_sweep_signals_this_trial():
        # the run's own handler set aside until the sweep's SIGTERM is here, then given it
        passed_on = []
        own = signal.signal(signal.SIGTERM, lambda signum, frame: passed_on.append(signum))
        os.kill(os.getppid(), signal.SIGTERM)
        deadline = time.monotonic() + 60
        while not passed_on and time.monotonic() < deadline:
            time.sleep(0.01)
        signal.signal(signal.SIGTERM, own)
        if not passed_on:
            sys.exit("the sweep did not pass the signal on")
        signal.raise_signal(signal.SIGTERM)  # taken by the run as if it arrived now

    def after(function):
        def wrapped(*args, **kwargs):
            result = function(*args, **kwargs)
            the_sweep_signals_this_trial()
            return result
        return wrapped

    def before(function):
        def wrapped(*args, **kwargs):
            the_sweep_signals_this_trial()
            return function(*args, **kwargs)
        return wrapped

    at = os.environ["SIGNAL_AT"]
    if at == "saved":  # the model saved, the run log says finished
        zoo.cli.runlog.log_run_result = after(zoo.cli.runlog.log_run_result)
    elif at == "trained":  # training finished, the model not saved yet
        zoo.training.trainer.Trainer.fit = after(zoo.training.trainer.Trainer.fit)
    else:  # the run's row made, its data being loaded
        zoo.api.run = before(zoo.api.run)
    sys.argv = ["zoo", *sys.argv[1:]]
    main()
    """
)

SWEEP = textwrap.dedent(
    """
    # `zoo sweep` whose trials run CHILD instead of `python -m zoo`.
    import sys

    import zoo.features.sweep
    from zoo.cli import main

    child = sys.argv[1]
    zoo.features.sweep.zoo_command = lambda *arguments: [sys.executable, child, *arguments]
    sys.argv = ["zoo", "sweep", *sys.argv[2:]]
    main()
    """
)


def signalled_sweep(tmp_path: Path, home: Path, at: str) -> subprocess.CompletedProcess[str]:
    """A one-trial sweep whose trial sends the sweep SIGTERM at `at`; its result."""
    (tmp_path / "child.py").write_text(CHILD, encoding="utf-8")
    arguments = ["gru-regressor", "--set", "num_windows=60", "--steps", "3",
                 "--set", "lr=loguniform(1e-3,3e-2)", "--trials", "1",
                 "--storage", sqlite_url(tmp_path), "--study", "sig", "--models",
                 str(tmp_path / "m")]  # fmt: skip
    env = {**os.environ, "ZOO_HOME": str(home), "SIGNAL_AT": at}
    command = [sys.executable, "-c", SWEEP, str(tmp_path / "child.py"), *arguments]
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )


@pytest.mark.slow
@pytest.mark.parametrize("at", ["trained", "saved"])
def test_sigterm_after_a_trial_trained_keeps_it_complete(tmp_path, zoo_home, at):
    """The reported race, end to end: the trial's run has saved its model and logged
    `finished` (or has finished training and is about to save) when SIGTERM reaches the
    sweep, which passes it on. Was: the run ended by the signal on its way out, the trial
    FAIL `interrupted` and its model deleted (or never saved, the row left `running`)."""
    result = signalled_sweep(tmp_path, zoo_home, at=at)
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr
    [trial] = load(sqlite_url(tmp_path), "sig").get_trials()
    assert trial.state.name == "COMPLETE", (trial.state, trial.user_attrs, result.stderr)
    assert (tmp_path / "m" / "trial-0.safetensors").exists()
    assert log_rows(zoo_home, "sig") == [
        (0, "finished", str(tmp_path / "m" / "trial-0.safetensors"))
    ]


@pytest.mark.slow
def test_sigterm_passed_on_while_a_trial_loads_its_data_logs_it_interrupted(tmp_path, zoo_home):
    """SIGTERM passed on by the sweep before the trial's training began (its row made,
    its data loading) ended the process outright: its row stayed `running`, shown `killed`."""
    result = signalled_sweep(tmp_path, zoo_home, at="loading")
    assert result.returncode == 130, result.stderr
    [trial] = load(sqlite_url(tmp_path), "sig").get_trials()
    assert trial.state.name == "FAIL" and trial.user_attrs.get("interrupted") is True
    with sqlite3.connect(zoo_home / "runs.sqlite") as db:
        rows = db.execute("SELECT status FROM runs WHERE study = 'sig'").fetchall()
    assert rows == [("interrupted",)]
    assert not (tmp_path / "m" / "trial-0.safetensors").exists()
