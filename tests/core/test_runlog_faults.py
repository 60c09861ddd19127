"""Run-log statuses that are true, and a log that cannot be read said so: a folder in its
place, an unreadable folder, a full disk before the end of a run, --metrics-out failing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import fill
from zoo.features import runlog


def test_a_folder_in_place_of_the_log_is_an_error_not_no_runs(zoo, zoo_home):
    (zoo_home / "runs.sqlite").mkdir()
    r = zoo("runs")
    assert r.code == 1
    assert "runs.sqlite: is a folder, not zoo's SQLite run log" in r.error_line()
    r = zoo("compare", "1", "2")
    assert r.code == 1 and "is a folder" in r.error_line()


def test_an_unreadable_log_folder_is_one_line(zoo, monkeypatch):
    real = Path.exists

    def denied(self, *args, **kwargs):
        if self.name == "runs.sqlite":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "exists", denied)
    for args in (["runs"], ["compare", "1", "2"]):
        r = zoo(*args)
        assert r.code == 1
        line = r.error_line()
        assert "cannot read it: Permission denied" in line and "internal error" not in line


def test_a_run_ending_on_a_full_disk_is_recorded_finished(tiny_disk, monkeypatch, zoo):
    monkeypatch.setenv("ZOO_HOME", str(tiny_disk))
    record = runlog.Recording.start("run", architecture="gru-regressor")
    assert record.reserve is not None and record.reserve.exists()
    fill(tiny_disk)
    confusion = {"labels": list("abcdefghij"), "counts": [[7] * 10] * 10}
    record.end("finished", metrics={"test": {"loss": 0.5, "confusion": confusion}})
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler", "runs.sqlite"]
    r = zoo("runs", "--json")  # reading needs no space either
    assert r.code == 0, r.stderr
    (row,) = r.json()
    assert row["status"] == "finished" and row["metrics"]["test"]["loss"] == 0.5


def test_reserves_of_killed_processes_are_removed(zoo_home):
    log = runlog.RunLog.open()
    gone = zoo_home / f".runs.sqlite.reserve-{os.uname().nodename}-999999999"
    gone.write_bytes(b"x")
    mine = runlog._set_aside(log.path)
    assert mine is not None and mine.stat().st_size == runlog.RESERVE_BYTES
    assert not gone.exists()
    assert runlog._release(mine) and not mine.exists()


def test_metrics_out_that_cannot_be_written_fails_the_row(zoo, tiny_disk, tmp_path):
    model = tmp_path / "g.safetensors"
    metrics = tiny_disk / "metrics.json"
    fill(tiny_disk)
    common = ["--epochs", "1", "--set", "num_windows=40", "-q", "--metrics-out", metrics]
    r = zoo("run", "gru-regressor", "--out", model, *common[:-2], "--metrics-out", metrics)
    assert r.code == 1 and "No space left on device" in r.error_line()
    assert model.exists() and not metrics.exists()
    (row,) = zoo("runs", "--json").json()
    assert row["status"] == "failed" and "metrics.json" in row["error"]
    assert row["metrics"]["test"]["mse"] > 0  # the result is kept
    r = zoo("eval", model, "--metrics-out", metrics)
    assert r.code == 1 and "No space left on device" in r.error_line()
    rows = zoo("runs", "--json").json()
    assert [row["status"] for row in rows] == ["failed", "failed"]


@pytest.mark.parametrize("command", ["run", "eval"])
def test_metrics_out_written_before_the_row_says_finished(zoo, tmp_path, command):
    model = tmp_path / "g.safetensors"
    metrics = tmp_path / "m.json"
    assert (
        zoo(
            "run", "gru-regressor", "--epochs", "1", "--set", "num_windows=40", "-q", "--out", model
        ).code
        == 0
    )
    if command == "run":
        args = [
            "run",
            "gru-regressor",
            "--epochs",
            "1",
            "--set",
            "num_windows=40",
            "-q",
            "--out",
            model,
        ]
    else:
        args = ["eval", model]
    assert zoo(*args, "--metrics-out", metrics).code == 0
    assert json.loads(metrics.read_text())["metrics"]
    assert zoo("runs", "--json").json()[0]["status"] == "finished"
