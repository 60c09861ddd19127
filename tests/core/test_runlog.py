"""The run log (zoo/features/runlog.py): every `zoo run` and `zoo eval` leaves one row however it ends,
many processes write at once without losing one, a log that cannot be used never costs a run,
and `zoo runs` / `zoo compare` read it back without torch."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import run_zoo, scripted_registry
from zoo.cli import cli
from zoo.core.modelfile import read_info
from zoo.features import runlog


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def rows(home: Path) -> list[dict]:
    log = runlog.RunLog.open(home / "runs.sqlite", create=False)
    try:
        return list(reversed(log.find()))
    finally:
        log.close()


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


def by_weight(self, batches):
    """Scores that depend on the trained weight, so seeds and learning rates differ."""
    list(batches)
    weight = float(self.layer.weight.item())
    return {"loss": abs(weight), "weight": weight, "examples": 2}


# ------------------------------------------------------------------- what a run records
def test_a_run_and_an_eval_leave_their_rows(zoo, use_registry, zoo_home, tmp_path):
    use_registry(scripted_registry(version="1.5")[0])
    assert zoo("run", "scripted", "--steps", "3", "-q", "--out", "m.safetensors").code == 0
    r = zoo("eval", "m.safetensors", "--split", "valid")
    assert r.code == 0, r.stderr
    run, evaluation = rows(zoo_home)
    model = tmp_path / "m.safetensors"
    info = read_info(model)
    assert run["command"] == "run" and run["status"] == "finished" and run["error"] is None
    assert run["arguments"] == ["run", "scripted", "--steps=3", "--out=m.safetensors", "--quiet"]
    assert (run["architecture"], run["dataset"], run["task"]) == ("scripted", "toy", "toy")
    assert run["settings"]["train"] == info["train_config"] and run["settings"]["train"]["steps"]
    assert run["metrics"] == {k: v for k, v in info["metrics"].items() if k != "training"}
    assert run["history"] and all("step" in entry for entry in run["history"])
    assert run["training"]["steps"] == 3 and "history" not in run["training"]
    assert run["model_path"] == str(model) and run["model_sha256"] == sha256(model)
    assert run["plugins"] == {"scripted": "1.5"} and run["zoo_version"]
    assert (run["processes"], run["threads"], run["device"]) == (1, 1, "cpu")
    assert run["pid"] == os.getpid() and run["ended"] >= run["started"] and run["seconds"] >= 0
    assert evaluation["command"] == "eval" and evaluation["status"] == "finished"
    assert evaluation["metrics"]["valid"]["loss"] == info["metrics"]["valid"]["loss"]
    assert evaluation["model_sha256"] == run["model_sha256"]
    assert evaluation["settings"]["model"] == info["config"]


def test_data_files_are_fingerprinted(zoo, zoo_home, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("to be or not to be, that is the question\n" * 40)
    args = ["run", "elman-rnn", "--dataset", "text", "--data", text, "--steps", "1", "-q"]
    assert zoo(*args).code == 0
    assert zoo(*args).code == 0
    text.write_text(text.read_text() + "whether tis nobler\n")
    assert zoo(*args).code == 0
    first, same, changed = rows(zoo_home)
    assert first["data"] == {"path": str(text)}
    assert first["data_fingerprint"] == same["data_fingerprint"] != changed["data_fingerprint"]


@pytest.mark.parametrize("how", ["--no-log", "ZOO_RUN_NO_LOG"])
def test_no_log_leaves_nothing(use_registry, zoo_home, monkeypatch, tmp_path, how):
    use_registry(scripted_registry()[0])
    monkeypatch.chdir(tmp_path)
    args = ["run", "scripted", "--steps", "1", "-q"]
    if how == "--no-log":
        args.append(how)
    else:
        monkeypatch.setenv(how, "1")
    r = CliRunner().invoke(cli, args, auto_envvar_prefix="ZOO")  # as `main` reads variables
    assert r.exit_code == 0, r.output
    assert not (zoo_home / "runs.sqlite").exists() or rows(zoo_home) == []


def interrupt(self, batch):
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, as the trainer receives it
    return self.layer(batch["x"]).pow(2).mean()


def fail_to_load(config, state):
    from zoo.core.errors import DataError

    raise DataError("line 3: not a number", path="toy.txt")


@pytest.mark.parametrize(
    ("script", "status", "code", "message"),
    [
        ({"nan_at": 1}, "diverged", 1, "loss"),
        ({"loss": interrupt}, "interrupted", 130, "interrupted at step 1"),
        ({"loader": fail_to_load}, "failed", 1, "toy.txt: line 3: not a number"),
        ({"loss": lambda self, batch: 1 / 0}, "failed", 1, "ZeroDivisionError"),
    ],
)
def test_how_a_run_ended_is_recorded(zoo, use_registry, zoo_home, script, status, code, message):
    use_registry(scripted_registry(**script)[0])
    r = zoo("run", "scripted", "--steps", "3", "-q")
    assert r.code == code, r.stderr
    (run,) = rows(zoo_home)
    assert run["status"] == status and message in run["error"], run["error"]
    assert run["ended"] is not None and run["model_sha256"] is None
    assert r.error_line().startswith(f"Error: {run['error']}")  # what the user read


# ------------------------------------------------- a log that cannot be used costs no run
def newer(home: Path) -> Path:
    runlog.RunLog.open(home / "runs.sqlite").close()
    db = sqlite3.connect(home / "runs.sqlite")
    db.execute(f"PRAGMA user_version = {runlog.SCHEMA_VERSION + 1}")
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all in the main file, nothing left to merge
    db.close()
    return home / "runs.sqlite"


def corrupt(home: Path) -> Path:
    (home / "runs.sqlite").write_bytes(b"not a database, not at all " * 100)
    return home / "runs.sqlite"


def unwritable(home: Path) -> Path:
    """A file where the log's folder should be (permission bits would not stop root)."""
    (home / "file").write_text("not a folder")
    os.environ["ZOO_HOME"] = str(home / "file" / "zoo")  # the zoo_home fixture restores it
    return home / "file"


@pytest.mark.parametrize(
    ("spoil", "says"),
    [
        (newer, "written by a newer zoo"),
        (corrupt, "file is not a database"),
        (unwritable, "cannot open"),
    ],
)
def test_a_log_that_cannot_be_used_costs_one_warning_not_the_run(
    zoo, use_registry, zoo_home, tmp_path, spoil, says
):
    use_registry(scripted_registry()[0])
    spoilt = spoil(zoo_home)
    before = spoilt.read_bytes()
    r = zoo("run", "scripted", "--steps", "2", "-q", "--out", "m.safetensors")
    assert r.code == 0, r.stderr
    assert (tmp_path / "m.safetensors").is_file()
    (line,) = warnings(r.stderr)
    assert says in line and "this command is not logged" in line
    assert spoilt.read_bytes() == before  # never touched
    assert "Error" not in r.stderr
    listed = zoo("runs")
    if spoil is unwritable:
        assert listed.code == 0 and listed.stdout == "no runs\n"
    else:
        assert listed.code == 1 and says in listed.error_line()


def test_a_write_that_fails_midway_warns_once(zoo, use_registry, zoo_home, tmp_path):
    def drop_the_table(self, batch):  # another program spoils the log during training
        db = sqlite3.connect(zoo_home / "runs.sqlite")
        db.execute("DROP TABLE IF EXISTS runs")
        db.close()
        return self.layer(batch["x"]).pow(2).mean()

    use_registry(scripted_registry(loss=drop_the_table)[0])
    r = zoo("run", "scripted", "--steps", "2", "-q", "--out", "m.safetensors")
    assert r.code == 0 and (tmp_path / "m.safetensors").is_file()
    (line,) = warnings(r.stderr)
    assert "no such table: runs" in line and "run 1 is not logged" in line


def test_an_older_log_is_migrated(zoo_home):
    path = zoo_home / "runs.sqlite"
    sqlite3.connect(path).close()  # version 0: an empty database
    log = runlog.RunLog.open(path)
    run_id = log.start("run", architecture="a")
    log.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == runlog.SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert run_id == 1


# ------------------------------------------------------------------------------ zoo runs
def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_runs_lists_filters_and_shows(zoo, zoo_home):
    log = runlog.RunLog.open()
    for arch, dataset, status in [("a", "x", "finished"), ("b", "x", "failed"), ("a", "y", None)]:
        run_id = log.start("run", architecture=arch, dataset=dataset)
        if status:
            log.update(run_id, status=status, metrics={"test": {"loss": 0.5}}, seconds=2.0)
    killed = log.start("run", architecture="a", dataset="y", pid=dead_pid())
    log.close()
    listed = zoo("runs", "--json").json()
    assert [r["id"] for r in listed] == [4, 3, 2, 1]  # latest first
    assert [r["status"] for r in listed] == ["killed", "running", "failed", "finished"]
    assert [r["id"] for r in zoo("runs", "--arch", "a", "--json").json()] == [4, 3, 1]
    assert [r["id"] for r in zoo("runs", "--dataset", "x", "-n", "1", "--json").json()] == [2]
    assert [r["id"] for r in zoo("runs", "--status", "killed", "--json").json()] == [killed]
    assert [r["id"] for r in zoo("runs", "--status", "running", "--json").json()] == [3]
    text = zoo("runs").stdout.splitlines()
    assert text[0].split()[:4] == ["ID", "STARTED", "(UTC)", "COMMAND"] and len(text) == 5
    assert "test loss 0.5000" in text[-1]
    shown = zoo("runs", "show", "1")
    assert shown.code == 0 and shown.stdout.startswith("run 1: finished")
    assert zoo("runs", "show", "1", "--json").json()["architecture"] == "a"
    missing = zoo("runs", "show", "9")
    assert missing.code == 2 and "run 9: no such run" in missing.error_line()


def test_runs_before_any_run(zoo):
    assert zoo("runs").stdout == "no runs\n"
    assert zoo("runs", "--json").json() == []


# --------------------------------------------------------------------------- zoo compare
def trained(zoo, seed: int, lr: float) -> str:
    out = f"s{seed}-lr{lr}.safetensors"
    r = zoo("run", "scripted", "--steps", "4", "--seed", seed, "--lr", lr, "-q", "--out", out)
    assert r.code == 0, r.stderr
    return out


def test_compare_pools_seeds_into_mean_and_sd(zoo, use_registry, tmp_path):
    use_registry(scripted_registry(evaluate=by_weight)[0])
    slow = [trained(zoo, seed, 0.001) for seed in (1, 2, 3)]
    fast = [trained(zoo, seed, 0.5) for seed in (1, 2)]
    doc = zoo("compare", *fast, *slow, "--json").json()
    assert doc["settings"] == ["train.lr"] and doc["seeds_differ"]
    assert doc["monitor"] == {"metric": "loss", "mode": "min", "split": "valid"}
    losses = {f: read_info(tmp_path / f)["metrics"]["valid"]["loss"] for f in slow + fast}
    groups = {tuple(row["sources"]): row for row in doc["rows"]}
    for files in (slow, fast):
        row = groups[tuple(files)]
        expected = [losses[f] for f in files]
        stat = row["metrics"]["valid"]["loss"]
        assert stat["n"] == len(files) and row["seeds"] == list(range(1, len(files) + 1))
        assert stat["mean"] == pytest.approx(statistics.fmean(expected))
        assert stat["sd"] == pytest.approx(statistics.stdev(expected))
    means = [row["metrics"]["valid"]["loss"]["mean"] for row in doc["rows"]]
    assert means == sorted(means)  # lowest loss first
    assert [m for _, m in doc["metrics"]][:2] == ["loss", "weight"]  # counts left out

    table = zoo("compare", *slow, *fast, "--format", "markdown", "--metric", "loss").stdout
    header, rule, *body = table.splitlines()
    assert header == "| runs | lr | seeds | parameters | valid loss | test loss | CPU s |"
    assert rule == "|---|---|---|---|---|---|---|" and len(body) == 2
    assert all(" ± " in line and ("(3)" in line or "(2)" in line) for line in body)

    parsed = list(csv.reader(io.StringIO(zoo("compare", *slow, "--format", "csv").stdout)))
    assert parsed[0][:3] == ["runs", "n", "seeds"] and parsed[1][1:3] == ["3", "1 2 3"]


def test_compare_reads_run_ids_and_files_alike(zoo, use_registry, zoo_home):
    use_registry(scripted_registry(evaluate=by_weight)[0])
    files = [trained(zoo, 1, 0.001), trained(zoo, 1, 0.5)]
    by_file = zoo("compare", *files, "--json").json()
    by_id = zoo("compare", "1", "#2", "--json").json()
    assert [r["sources"] for r in by_id["rows"]] in (
        [["#1"], ["#2"]],
        [["#2"], ["#1"]],
    )
    strip = [{k: v for k, v in r.items() if k != "sources"} for r in by_file["rows"]]
    assert strip == [{k: v for k, v in r.items() if k != "sources"} for r in by_id["rows"]]
    missing = zoo("compare", "7")
    assert missing.code == 2 and "7: no such model file or run id" in missing.error_line()
    damaged = zoo("compare", "nothing.safetensors")
    assert damaged.code == 1 and "no such model file" in damaged.error_line()


PROBE = """
import sys
from zoo.cli import cli
for args in {commands!r}:
    try:
        cli.main(args=args, prog_name="zoo")
    except SystemExit as e:
        assert e.code in (0, None), (args, e.code)
heavy = [m for m in ("torch", "matplotlib") if m in sys.modules]
print("HEAVY", heavy, file=sys.stderr)
"""


@pytest.mark.slow
def test_runs_and_compare_do_not_import_torch(zoo, use_registry, zoo_home, tmp_path):
    use_registry(scripted_registry()[0])
    model = trained(zoo, 1, 0.01)
    commands = [["runs"], ["runs", "--json"], ["runs", "show", "1"], ["compare", model, "1"]]
    p = subprocess.run(
        [sys.executable, "-c", PROBE.format(commands=commands)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip().endswith("HEAVY []"), p.stderr


# ----------------------------------------------------------------------- many at once
WORKER = """
import sys, time
from zoo import runlog
start_at, count = float(sys.argv[1]), int(sys.argv[2])
while time.time() < start_at:
    time.sleep(0.001)
for i in range(count):
    with runlog.recording("run", architecture="worker", arguments=[str(i)]) as rec:
        rec.update(metrics={"valid": {"loss": float(i)}})
"""


@pytest.mark.slow
def test_eight_processes_at_once_lose_no_row(zoo_home):
    """Eight processes start together on a log that does not exist yet (they race to create
    it), each recording 15 runs as `zoo run` does: open, insert, update, end."""
    start_at = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(start_at), "15"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, outputs
    assert all(err == "" for _, err in outputs), outputs  # no warning, no "database is locked"
    found = rows(zoo_home)
    assert len(found) == 8 * 15 and {r["status"] for r in found} == {"finished"}
    assert len({r["pid"] for r in found}) == 8
    assert all(r["metrics"] is not None for r in found)


@pytest.mark.slow
def test_real_runs_at_once_and_one_killed(zoo_home, tmp_path):
    """Four `zoo run` processes at once (eight lighter writers at once are
    `test_eight_processes_at_once_lose_no_row`): three finish while the fourth, started with
    them, is killed with SIGKILL: three finished rows (none lost, no "database is locked"),
    the fourth `killed`, and the database intact."""
    exe = Path(sys.executable).parent / "zoo"
    base = [str(exe), "run", "elman-rnn", "--dataset", "char-pairs", "-q"]
    quick = [
        subprocess.Popen([*base, "--steps", "2", "--out", f"{i}.safetensors"], cwd=tmp_path)
        for i in range(3)
    ]
    endless = subprocess.Popen(
        [*base, "--steps", "10000000", "--out", "k.safetensors"], cwd=tmp_path
    )
    deadline = time.time() + 120
    while not any(r["pid"] == endless.pid for r in _rows_if_any(zoo_home)):
        assert time.time() < deadline and endless.poll() is None
        time.sleep(0.2)
    endless.send_signal(signal.SIGKILL)
    endless.wait()
    assert [p.wait(timeout=120) for p in quick] == [0] * 3
    with sqlite3.connect(zoo_home / "runs.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    found = {r["pid"]: r for r in rows(zoo_home)}
    assert found[endless.pid]["status"] == "killed" and found[endless.pid]["ended"] is None
    for i, p in enumerate(quick):
        assert found[p.pid]["status"] == "finished"
        assert found[p.pid]["model_sha256"] == sha256(tmp_path / f"{i}.safetensors")
    listed = run_zoo("runs", "--status", "killed", "--json", cwd=tmp_path)
    assert [r["pid"] for r in json.loads(listed.stdout)] == [endless.pid]


def _rows_if_any(home: Path) -> list[dict]:
    if not (home / "runs.sqlite").exists():
        return []
    try:
        return rows(home)
    except runlog.RunLogError:
        return []  # created, not yet migrated
