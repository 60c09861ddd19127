"""`zoo sweep` on Optuna and `zoo run --seeds`: search spaces, studies in SQLite and a real
PostgreSQL server, pruning, failed and interrupted trials, the best model kept, the run log."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CSV_SMALL, SERIES, run_zoo, write
from zoo.core.errors import UsageError
from zoo.core.modelfile import read_info
from zoo.features.sweep_space import Dimension, parse, split

optuna = pytest.importorskip("optuna", reason="zoo sweep needs the sweep extra (optuna)")

# a few seconds per trial: sine windows, a small GRU
TOY = ("gru-regressor", "--set", "num_windows=200", "--epochs", "2")
SPACE = ("--set", "lr=loguniform(1e-3,3e-2)", "--set", "hidden_size=choice(4,8)")


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'study.sqlite'}"


def load(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


def log_rows(home: Path, study: str) -> list[tuple]:
    with sqlite3.connect(home / "runs.sqlite") as db:
        return db.execute(
            "SELECT trial, status, model_path FROM runs WHERE study = ? ORDER BY trial", (study,)
        ).fetchall()


# --------------------------------------------------------------------- search spaces
@pytest.mark.parametrize(
    ("text", "kind", "args"),
    [
        ("uniform(0,0.5)", "uniform", (0.0, 0.5)),
        ("loguniform(1e-4, 1e-2)", "loguniform", (1e-4, 1e-2)),
        ("int(1,4)", "int", (1, 4)),
        ("int(16,128,16)", "int", (16, 128, 16)),
        ("logint(8,512)", "logint", (8, 512)),
        ("choice(64,128)", "choice", (64, 128)),
        ("choice(lstm, 'gru', true, 0.5)", "choice", ("lstm", "gru", True, 0.5)),
    ],
)
def test_search_spaces_parse(text, kind, args):
    assert parse("x", text) == Dimension("x", kind, args)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("loguniform(0,1)", "0 < LOW"),
        ("choice()", "at least one value"),
        ("normal(0,1)", "unknown distribution 'normal'"),
        ("uniform(1,1)", "LOW must be below HIGH"),
        ("uniform(0)", "takes LOW,HIGH"),
        ("int(1.5,3)", "not an integer"),
        ("uniform(0,inf)", "finite"),
        ("choice(8,8)", "given twice"),
        ("logint(0,8)", "1 <= LOW"),
    ],
)
def test_malformed_search_spaces_say_what_is_wrong(text, says):
    with pytest.raises(UsageError, match=says):
        parse("x", text)


def test_fixed_and_searched_settings_are_told_apart():
    fixed, space = split({"epochs": "3", "lr": "loguniform(1e-4,1e-2)", "path": "a.csv"})
    assert fixed == {"epochs": "3", "path": "a.csv"} and list(space) == ["lr"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--set", "nosuch=uniform(0,1)"), "nosuch"),
        (("--set", "hidden_size=choice(8,abc)"), "hidden_size=choice(8,abc)"),
        (("--set", "hidden_size=uniform(0.5,2)"), "hidden_size"),
        (("--set", "dropout=uniform(0,2)"), "dropout"),
        (("--set", "lr=loguniform(0,1)"), "0 < LOW"),
        (("--set", "epochs=3"), "nothing to search"),
        (("--set", "lr=uniform(0.1,0.2)", "--seeds", "3-1"), "--seeds 3-1"),
        # a searched setting that a fixed option also sets: was the search dropped silently
        (("--epochs", "1", "--set", "epochs=int(1,2)"), "--set epochs=int(1,2)"),
        (("--epochs", "1", "--set", "train.epochs=int(1,2)"), "--epochs 1"),
        # a search space that is not closed: was "nothing to search"
        (("--set", "lr=loguniform(1e-3"), "--set lr=loguniform(1e-3: missing ')'"),
        (("--set", "lr=uniform(0,1", "--set", "dropout=uniform(0,0.5)"), "lr=uniform(0,1"),
    ],
)
def test_bad_sweeps_are_one_usage_line(zoo, args, says):
    result = zoo("sweep", "gru-regressor", *args, "--storage", "sqlite:///s.sqlite")
    assert result.code == 2 and says in result.error_line()
    assert not Path("s.sqlite").exists()  # nothing started


def test_a_search_that_a_fixed_option_overrides_names_both(zoo, tmp_path):
    """`--epochs 1` and `--set epochs=int(1,2)` (or the run file's search): one of them
    would be dropped, so neither is guessed."""
    result = zoo("sweep", "gru-regressor", "--epochs", "1", "--set", "epochs=int(1,2)",
                 "--set", "lr=uniform(0.1,0.2)", "--storage", "sqlite:///s.sqlite")  # fmt: skip
    line = result.error_line()
    assert result.code == 2 and "--set epochs=int(1,2)" in line and "--epochs 1" in line
    write(tmp_path, "sweep.toml", 'architecture = "gru-regressor"\nepochs = 1\n\n'
          '[settings]\nepochs = "int(1,2)"\n')  # fmt: skip
    result = zoo("sweep", "--config", str(tmp_path / "sweep.toml"))
    line = result.error_line()
    assert result.code == 2 and "epochs=int(1,2)" in line and "epochs = 1 in " in line


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///", "sqlite:///:memory:", "sqlite:///file::memory:?uri=true"]
)
def test_an_in_memory_storage_is_refused(zoo, url):
    """A sweep's trials are processes of their own: a database in the sweep's memory is one
    they cannot reach. Was: a traceback from each thread, then exit 0 with 0 trials."""
    result = zoo("sweep", *TOY, *SPACE, "--trials", "1", "--storage", url)
    line = result.error_line()
    assert result.code == 2 and line.startswith(f"Error: --storage {url}: ")
    assert "in memory" in line
    shown = zoo("sweep", "show", "--storage", url)
    assert shown.code == 2 and "in memory" in shown.error_line()


def test_postgres_without_its_driver_names_the_extra(zoo, monkeypatch):
    """Was: `internal error: ImportError` (Optuna's own message, no word of the extra)."""
    for name in ("psycopg", "psycopg2"):
        monkeypatch.setitem(sys.modules, name, None)
    url = "postgresql://zoo:secret@127.0.0.1:1/zoo"
    result = zoo("sweep", *TOY, *SPACE, "--storage", url)
    line = result.error_line()
    assert result.code == 2 and "pip install 'rnn-zoo[postgres]'" in line
    assert line.startswith("Error: --storage postgresql://zoo:***@127.0.0.1:1/zoo: ")
    assert "secret" not in result.stderr
    shown = zoo("sweep", "show", "--storage", url)
    assert shown.code == 2 and "pip install 'rnn-zoo[postgres]'" in shown.error_line()


def test_show_of_a_storage_that_does_not_exist_creates_nothing(zoo, tmp_path, zoo_home):
    """Was: an empty database made at the path, and `no studies` said of it."""
    missing = tmp_path / "missing.sqlite"
    for args in ((), ("toy",)):
        result = zoo("sweep", "show", *args, "--storage", f"sqlite:///{missing}")
        assert result.code == 1, result.stderr
        assert result.error_line() == f"Error: --storage sqlite:///{missing}: no such file"
        assert not missing.exists()
    folder = zoo("sweep", "show", "--storage", f"sqlite:///{tmp_path}")
    assert folder.code == 1 and "is a folder" in folder.error_line()
    # the default storage before any sweep: no studies yet, and nothing made in zoo's folder
    before = sorted(zoo_home.rglob("*"))
    listed = zoo("sweep", "show")
    assert listed.code == 0 and listed.stdout.startswith("no studies in ")
    assert zoo("sweep", "show", "toy").code == 2
    assert sorted(zoo_home.rglob("*")) == before


def test_an_unreachable_storage_is_one_line(zoo):
    # nothing listens on port 1; the driver gives up at once (connection refused)
    url = "postgresql://zoo:secret@127.0.0.1:1/zoo"
    result = zoo("sweep", *TOY, *SPACE, "--storage", url)
    line = result.error_line()
    assert result.code == 1 and "cannot open it" in line
    assert "secret" not in line and "127.0.0.1:1/zoo" in line


def test_a_study_of_another_search_space_is_refused(zoo, tmp_path):
    url = sqlite_url(tmp_path)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="s", storage=url)
    study.set_user_attr("zoo", {"architecture": "gru-regressor", "space": {"lr": "uniform(0,1)"}})
    result = zoo("sweep", *TOY, *SPACE, "--storage", url, "--study", "s")
    assert result.code == 2 and "made for another search" in result.error_line()


def test_without_optuna_one_line_says_what_to_install():
    code = (
        "import sys; sys.modules['optuna'] = None\n"
        "from zoo.cli import main\n"
        "sys.argv = ['zoo', 'sweep', 'gru-regressor', '--set', 'lr=uniform(0.1,0.2)']\n"
        "main()"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert p.stderr.strip() == "Error: zoo sweep needs optuna: pip install 'rnn-zoo[sweep]'"


# ------------------------------------------------------------------------- sweeping
@pytest.mark.slow
def test_a_sweep_keeps_the_best_model_logs_every_trial_and_continues(tmp_path, zoo_home):
    url = sqlite_url(tmp_path)
    common = ("sweep", *TOY, *SPACE, "--jobs", "2", "--storage", url, "--study", "toy",
              "--models", tmp_path / "m")  # fmt: skip
    result = run_zoo(*common, "--trials", "3", "--json", cwd=tmp_path)
    assert result.code == 0, result.stderr
    doc = result.json()
    study = load(url, "toy")
    assert sorted(t.number for t in study.get_trials()) == [0, 1, 2]
    assert doc["best"]["number"] == study.best_trial.number
    # running the same command again continues the study up to --trials
    again = run_zoo(*common, "--trials", "4", cwd=tmp_path)
    assert again.code == 0 and "3 of 4 trial(s) done" in again.stderr
    study = load(url, "toy")
    trials, best = study.get_trials(), study.best_trial
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    kept = sorted((tmp_path / "m").glob("*.safetensors"))
    assert kept == [tmp_path / "m" / f"trial-{best.number}.safetensors"]
    # the kept file is the best trial's model, and its run file reproduces the trial
    assert read_info(kept[0])["metrics"]["valid"]["mse"] == pytest.approx(best.value)
    assert read_info(kept[0])["config"]["hidden_size"] == best.params["hidden_size"]
    assert (
        f"hidden_size = {best.params['hidden_size']}\n" in kept[0].with_suffix(".toml").read_text()
    )
    # every trial is one run in the log, with its study and number
    rows = log_rows(zoo_home, "toy")
    assert [r[0] for r in rows] == [0, 1, 2, 3]
    assert all(r[1] in ("finished", "pruned") for r in rows)
    assert run_zoo("compare", "study:toy", "--json", cwd=tmp_path).code == 0
    # zoo sweep show: the trials, the search, the importances; the studies of a storage
    shown = run_zoo("sweep", "show", "toy", "--storage", url, "--json", cwd=tmp_path).json()
    assert [t["number"] for t in shown["trials"]] == [0, 1, 2, 3]
    assert shown["search"]["space"] == {
        "hidden_size": "choice(4,8)",
        "lr": "loguniform(0.001,0.03)",
    }
    assert set(shown["importances"]) <= {"lr", "hidden_size"}
    assert shown["best"]["models"] == [str(kept[0])]
    text = run_zoo("sweep", "show", "toy", "--storage", url, cwd=tmp_path).stdout
    assert "best: trial" in text and "importances:" in text
    listed = run_zoo("sweep", "show", "--storage", url, "--json", cwd=tmp_path).json()
    assert listed["studies"] == ["toy"]


@pytest.mark.slow
def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    # trials reading missing.csv fail in their `zoo run`; the seeded sampler alternates
    write(tmp_path, "s.csv", SERIES)
    url = sqlite_url(tmp_path)
    small = [f"--set={k}={v}" for k, v in CSV_SMALL.items()]
    result = run_zoo("sweep", "gru-regressor", "--dataset", "csv", *small, "--epochs", "2",
                     "--set", "path=choice(s.csv,missing.csv)", "--trials", "4", "--jobs", "2",
                     "--sampler-seed", "1", "--storage", url, "--study", "f", cwd=tmp_path)  # fmt: skip
    assert result.code == 0, result.stderr
    trials = load(url, "f").get_trials()
    assert sorted(t.params["path"] for t in trials) == ["missing.csv"] * 2 + ["s.csv"] * 2
    for trial in trials:
        missing = trial.params["path"] == "missing.csv"
        assert trial.state.name == ("FAIL" if missing else "COMPLETE")
        assert not missing or "missing.csv" in trial.user_attrs["error"]
    assert result.stderr.count("failed: ") == 2


@pytest.mark.slow
def test_a_sweep_whose_trials_all_fail_stops_with_the_reason(tmp_path):
    result = run_zoo("sweep", "gru-regressor", "--dataset", "csv", "--data", "missing.csv",
                     *SPACE, "--trials", "10", "--jobs", "3", "--storage", sqlite_url(tmp_path),
                     cwd=tmp_path)  # fmt: skip
    line = result.error_line()
    assert result.code == 1 and "missing.csv: no such file" in line
    # three at once: the two trials begun while the third failed end too
    assert re.search(r"stopped after [345] failed trials in a row", line), line


@pytest.mark.slow
def test_pruned_runs_stop_early_with_their_own_status(tmp_path, zoo_home):
    """A trial far behind five finished ones is pruned at its first validation: `zoo run`
    exits 3 and the run log says `pruned`."""
    url = sqlite_url(tmp_path)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="p", storage=url)
    for _ in range(5):
        trial = study.ask()
        for step in range(0, 200, 5):
            trial.report(1e-9, step)
        study.tell(trial, 1e-9)
    trial = study.ask()
    about = {"storage": url, "study": "p", "trial_id": trial._trial_id, "trial": trial.number,
             "metric": "mse", "pruner": "median", "report": True}  # fmt: skip
    result = run_zoo("run", *TOY, "--out", "t.safetensors", cwd=tmp_path,
                     env={"ZOO_SWEEP_TRIAL": json.dumps(about)})  # fmt: skip
    assert result.code == 3 and "pruned at step" in result.error_line()
    assert not (tmp_path / "t.safetensors").exists()
    assert log_rows(zoo_home, "p") == [(trial.number, "pruned", None)]
    assert len(load(url, "p").get_trials()[-1].intermediate_values) == 1
    # --prune-after: the same trial behind the same median, but not pruned before step 10**6
    trial = study.ask()
    about.update(trial_id=trial._trial_id, trial=trial.number, prune_after=10**6)
    spared = run_zoo("run", *TOY, "--out", "s.safetensors", cwd=tmp_path,
                     env={"ZOO_SWEEP_TRIAL": json.dumps(about)})  # fmt: skip
    assert spared.code == 0, spared.stderr
    assert len(load(url, "p").get_trials()[-1].intermediate_values) >= 2


@pytest.mark.slow
def test_ctrl_c_marks_running_trials_and_a_rerun_continues(tmp_path, zoo_home):
    url = sqlite_url(tmp_path)
    command = [sys.executable, "-m", "zoo", "sweep", "gru-regressor", "--epochs", "8", *SPACE,
               "--trials", "2", "--jobs", "2", "--storage", url, "--study", "c"]  # fmt: skip
    sweep = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not [r for r in _rows_or_none(zoo_home) if r[1] == "running"]:
        assert time.monotonic() < deadline and sweep.poll() is None
        time.sleep(0.2)
    time.sleep(1.0)
    sweep.send_signal(signal.SIGINT)  # to the sweep alone, as `kill -INT` would
    _, stderr = sweep.communicate(timeout=60)
    assert sweep.returncode == 130, stderr
    assert "run the same command to continue" in stderr and "Traceback" not in stderr
    trials = load(url, "c").get_trials()
    assert trials and all(t.state.name == "FAIL" and t.user_attrs["interrupted"] for t in trials)
    assert {r[1] for r in log_rows(zoo_home, "c")} == {"interrupted"}
    shown = run_zoo("sweep", "show", "c", "--storage", url, "--json", cwd=tmp_path).json()
    assert {t["state"] for t in shown["trials"]} == {"interrupted"}
    # interrupted trials do not count: the same command runs the two trials again
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    states = [t.state.name for t in load(url, "c").get_trials()]
    assert states.count("FAIL") == len(trials) and states.count("COMPLETE") == 2


def _rows_or_none(home: Path) -> list[tuple]:
    try:
        return log_rows(home, "c")
    except sqlite3.OperationalError:  # not created yet
        return []


def _assert_each_trial_once(url: str, study: str, home: Path, trials: int) -> None:
    """Exactly `trials` trials ran, each once; any other trial in the study was handed out
    past the limit to a worker asking at the same moment and given back unrun."""
    recorded = load(url, study).get_trials()
    numbers = [t.number for t in recorded]
    assert sorted(numbers) == list(range(len(numbers))), numbers  # none lost, none twice
    ran = [t for t in recorded if not t.user_attrs.get("given_back")]
    assert len(ran) == trials, numbers
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in ran)
    assert all(t.state.name == "FAIL" and not t.params for t in recorded if t not in ran)
    rows = log_rows(home, study)
    assert sorted(r[0] for r in rows) == [t.number for t in ran]  # each trial one run in the log


@pytest.mark.slow
def test_sqlite_with_two_jobs_records_every_trial_once(tmp_path, zoo_home):
    url = sqlite_url(tmp_path)
    result = run_zoo("sweep", *TOY, *SPACE, "--trials", "4", "--jobs", "2", "--storage", url,
                     "--study", "j", cwd=tmp_path)  # fmt: skip
    assert result.code == 0, result.stderr
    _assert_each_trial_once(url, "j", zoo_home, 4)


def quick_sweep(plan: Any) -> Any:
    """A `Sweep` whose trials start no `zoo run` and take no time, so that many end at the
    same moment: what makes two threads, or two machines, ask for the last trial at once.
    Its `trained` lists the trials that got as far as training."""
    from zoo.features.sweep import Sweep, open_study

    class QuickSweep(Sweep):
        def train(self, trial: Any, values: dict[str, Any], seed: int, report: bool) -> float:
            self.trained.append(trial.number)
            return float(values["lr"])

    sweep = QuickSweep(plan, open_study(plan))
    sweep.trained = []
    return sweep


def quick_plan(tmp_path: Path, study: str, trials: int, jobs: int) -> Any:
    from zoo.features.sweep import Plan

    return Plan(architecture="gru-regressor", dataset="sine-windows", options={}, fixed={},
                space={"lr": parse("lr", "uniform(0.001,0.1)")}, metric="mse",
                direction="minimize", seeds=[0], threads=1, trials=trials, jobs=jobs,
                study=study, storage=sqlite_url(tmp_path), folder=tmp_path,
                echo=lambda line: None)  # fmt: skip


def test_many_jobs_on_quick_trials_make_exactly_the_trials_asked_for(tmp_path):
    """Threads ending trials together each saw room for one more and started it: 9 or 10
    trials for --trials 8 --jobs 4, about one sweep in two."""
    for repeat in range(5):
        plan = quick_plan(tmp_path, f"quick-{repeat}", trials=8, jobs=4)
        sweep = quick_sweep(plan)
        sweep.run()
        trials = load(plan.storage, plan.study).get_trials()
        assert sorted(t.number for t in trials) == list(range(8)), f"sweep {repeat}"
        assert all(t.state.name == "COMPLETE" for t in trials)
        assert sorted(sweep.trained) == list(range(8))


def test_machines_asking_at_once_never_run_more_than_the_trials_asked_for(tmp_path):
    """Two processes on one storage (each its own lock and study object), three threads
    each: trials handed out past --trials are given back before training, not counted, not
    reported, and the study has exactly --trials trials that ran."""
    from zoo.features.sweep import counted

    for repeat in range(2):
        plan = quick_plan(tmp_path, f"machines-{repeat}", trials=8, jobs=3)
        said: list[str] = []
        plan.echo = said.append
        machines = [quick_sweep(plan) for _ in range(2)]
        workers = [threading.Thread(target=m.work) for m in machines for _ in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        study = load(plan.storage, plan.study)
        ran = [t for t in study.get_trials() if not t.user_attrs.get("given_back")]
        assert counted(study) == 8 and len(ran) == 8
        assert all(t.state.name == "COMPLETE" for t in ran)
        trained = sorted(n for m in machines for n in m.trained)
        assert trained == sorted(t.number for t in ran)
        assert all(m.failures_in_a_row == 0 for m in machines)
        assert len(said) == 8 and all(" finished: " in line for line in said), said


def test_a_trial_handed_out_past_the_limit_is_given_back_unrun(tmp_path):
    """Three machines ask at once for the last two trials: the third trial, by number, is
    given back before anything runs; the first two train."""
    from zoo.features.sweep import TrialGivenBack, counted

    plan = quick_plan(tmp_path, "last", trials=2, jobs=1)
    sweep = quick_sweep(plan)
    asked = [load(plan.storage, "last").ask() for _ in range(3)]
    with pytest.raises(TrialGivenBack):
        sweep.objective(asked[2])
    assert sweep.trained == [] and asked[2].user_attrs == {"given_back": True}
    assert sweep.objective(asked[0]) == asked[0].params["lr"]
    assert sweep.trained == [0]
    load(plan.storage, "last").tell(asked[2], state=optuna.trial.TrialState.FAIL)
    assert counted(sweep.study) == 2
    assert not sweep.another_wanted()


def test_an_error_in_a_sweep_thread_ends_the_sweep_with_it(tmp_path):
    """Was: each thread printed its traceback, and the sweep went on to exit 0, `0 trials`
    (an in-memory storage did that). Now the first error stops the other threads and is
    raised by `run`: the command line makes it one line, exit 1."""
    from zoo.features.sweep import Sweep, open_study

    class Broken(Sweep):
        def another_wanted(self) -> bool:
            if super().another_wanted():
                raise RuntimeError("the storage went away")
            return False

    plan = quick_plan(tmp_path, "broken", trials=4, jobs=2)
    with pytest.raises(RuntimeError, match="the storage went away"):
        Broken(plan, open_study(plan)).run()


def test_a_rerun_continues_the_seeded_sampler_instead_of_repeating_it(tmp_path):
    """--sampler-seed: a sweep stopped after 3 trials and run again to 6 tries 6 settings,
    the same ones in the same order as a sweep of 6 run in one go. Was: the sampler seeded
    afresh on every run, so the rerun's trials repeated the first ones' settings exactly."""
    plan = quick_plan(tmp_path, "seeded", trials=3, jobs=1)
    plan.sampler_seed = 7
    quick_sweep(plan).run()
    plan.trials = 6
    quick_sweep(plan).run()
    continued = [t.params["lr"] for t in load(plan.storage, "seeded").get_trials()]
    assert len(set(continued)) == 6, continued
    fresh = quick_plan(tmp_path, "fresh", trials=6, jobs=1)
    fresh.sampler_seed = 7
    quick_sweep(fresh).run()
    assert [t.params["lr"] for t in load(plan.storage, "fresh").get_trials()] == continued
    other = quick_plan(tmp_path, "other", trials=3, jobs=1)
    other.sampler_seed = 8
    quick_sweep(other).run()
    assert [t.params["lr"] for t in load(plan.storage, "other").get_trials()] != continued[:3]


@pytest.mark.slow
def test_a_sweep_reads_its_run_file(tmp_path):
    write(tmp_path, "sweep.toml", 'architecture = "gru-regressor"\ntrials = 1\n'
          f'storage = "{sqlite_url(tmp_path)}"\nstudy = "file"\n\n[settings]\n'
          'num_windows = 200\nepochs = 2\nlr = "loguniform(1e-3,3e-2)"\n')  # fmt: skip
    result = run_zoo("sweep", "--config", "sweep.toml", "--json", cwd=tmp_path)
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["search"]["space"] == {"lr": "loguniform(0.001,0.03)"}
    assert doc["search"]["fixed"] == {"num_windows": "200", "epochs": "2"}
    assert len(doc["trials"]) == 1


def test_a_sweep_run_file_with_an_unknown_key_is_one_line(zoo, tmp_path):
    write(tmp_path, "sweep.toml", 'architecture = "gru-regressor"\ntrails = 2\n')
    result = zoo("sweep", "--config", str(tmp_path / "sweep.toml"))
    assert result.code == 2 and "unknown key 'trails'" in result.error_line()
    assert "did you mean 'trials'" in result.error_line()


# ------------------------------------------------------------------------------ seeds
@pytest.mark.slow
def test_seeds_train_one_model_each_and_summarise_them(tmp_path, zoo_home):
    from safetensors.torch import load_file

    result = run_zoo("run", *TOY, "--seeds", "0-1", "--jobs", "2", "--out", "m.safetensors",
                     "--json", cwd=tmp_path)  # fmt: skip
    assert result.code == 0, result.stderr
    doc = result.json()
    files = [tmp_path / f"m-seed{s}.safetensors" for s in (0, 1)]
    scores = [read_info(f)["metrics"]["valid"]["mse"] for f in files]
    assert [read_info(f)["train_config"]["seed"] for f in files] == [0, 1]
    assert doc["summary"]["valid"]["mse"]["mean"] == pytest.approx(sum(scores) / 2)
    assert doc["summary"]["valid"]["mse"]["n"] == 2 and doc["failed"] == []
    # each seed is the plain run of that seed
    single = run_zoo("run", *TOY, "--seed", "1", "--out", "one.safetensors", cwd=tmp_path)
    assert single.code == 0, single.stderr
    one, seeded = load_file(tmp_path / "one.safetensors"), load_file(files[1])
    assert all((one[k] == seeded[k]).all() for k in one)
    with sqlite3.connect(zoo_home / "runs.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM runs WHERE status = 'finished'").fetchone()[0] == 3


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--seeds", "0-2", "--seed", "1"), "--seeds or --seed"),
        (("--seeds", "a-b"), "--seeds a-b"),
        (("--seeds", "1,1"), "given twice"),
        (("--seeds", "0-1", "--resume", "x.ckpt.safetensors"), "--resume"),
    ],
)
def test_bad_seeds_are_one_usage_line(zoo, args, says):
    result = zoo("run", "gru-regressor", *args)
    assert result.code == 2 and says in result.error_line()


def test_the_architectures_headline_metrics_are_shown_for_each_trial(tmp_path):
    """A trial keeps its headline validation metrics (the mean over its seeds); its line and
    `zoo sweep show` show them beside the objective."""
    from zoo.cli.sweep import _render_study, study_document
    from zoo.features import sweep as sweep_module
    from zoo.features.sweep import Sweep, open_study

    lines: list[str] = []
    plan = quick_plan(tmp_path, "headline", trials=2, jobs=1)
    plan.metric, plan.seeds, plan.echo = "loss", [0, 1], lines.append
    plan.headline = ("loss", "f1/anomaly")

    class Scored(Sweep):
        def train(self, trial: Any, values: dict[str, Any], seed: int, report: bool) -> float:
            valid = {"loss": 0.5 + seed, "f1/anomaly": 0.6 + 0.2 * seed, "recall/anomaly": 1.0}
            path = tmp_path / f"{trial.number}-{seed}.json"
            path.write_text(json.dumps({"metrics": {"valid": valid}}), encoding="utf-8")
            return self.score(trial, path)

    Scored(plan, open_study(plan)).run()
    study = load(plan.storage, plan.study)
    assert [t.user_attrs["valid"] for t in study.get_trials()] == [
        {"loss": 1.0, "f1/anomaly": pytest.approx(0.7)}
    ] * 2
    assert all("valid loss 1.0000, f1/anomaly 0.7000" in line for line in lines)
    shown = "\n".join(_render_study(study_document(sweep_module, study, importances=False)))
    assert "TRIAL  STATE     VALUE   f1/anomaly  SECONDS" in shown
