"""Faults on several processes: Ctrl-C stops every rank together and resumes exactly; a
worker killed with SIGKILL is restarted from the last checkpoint (`--max-restarts`) or is one
clear error; a checkpoint of N processes resumes on another number. Linux only: the tests find
the worker to kill in /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import run_zoo
from zoo.training.checkpoint import default_path

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc"),
]

ZOO = str(Path(sys.executable).parent / "zoo")
# The toy tagger on two processes: dropout and word dropout make every process's own random
# state part of what a resume must restore.
TAGGER_TWO = ["run", "lstm-tagger", "--epochs", "60", "--set", "lr_schedule=linear"]
TAGGER_TWO += ["--nproc-per-node", "2"]
# gru-regressor has no dropout and averages its loss over examples: any number of processes
# ends at the weights of one, to float tolerance.
REGRESSOR = ["run", "gru-regressor", "--epochs", "10"]


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def start(args: list, cwd: Path, job: str) -> subprocess.Popen:
    env = {**os.environ, "ZOO_TEST_JOB": job}
    return subprocess.Popen(
        [ZOO, *map(str, args)], cwd=cwd, env=env, stderr=subprocess.PIPE, text=True
    )


def worker(job: str, rank: int) -> int:
    """The pid of the training process of rank `rank` of the job marked `job`."""
    wanted = {f"ZOO_TEST_JOB={job}".encode(), f"RANK={rank}".encode()}
    for proc in Path("/proc").iterdir():
        try:
            environ = set((proc / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if proc.name.isdigit() and wanted <= environ:
            return int(proc.name)
    raise AssertionError(f"no process of rank {rank}")


def kill_after_first_checkpoint(args: list, out: Path, job: str) -> subprocess.Popen:
    """Start a two-process run that checkpoints, SIGKILL rank 1 once a checkpoint is saved."""
    proc = start([*args, "--out", out, "--checkpoint-every", "20"], out.parent, job)
    deadline = time.monotonic() + 120
    while not default_path(out).exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.02)
    os.kill(worker(job, 1), signal.SIGKILL)
    return proc


@pytest.fixture(scope="module")
def tagger_two(tmp_path_factory):
    """The weights of the uninterrupted two-process tagger run."""
    out = tmp_path_factory.mktemp("whole") / "whole.safetensors"
    r = run_zoo(*TAGGER_TWO, "--out", out, "-q", cwd=out.parent)
    assert r.code == 0, r.stderr
    return load_file(out)


def test_ctrl_c_stops_both_processes_and_resuming_on_two_gives_the_same_weights(
    tmp_path, tagger_two
):
    out = tmp_path / "cut.safetensors"
    proc = start([*TAGGER_TWO, "--out", out], tmp_path, uuid.uuid4().hex)
    for line in proc.stderr:  # wait until training is under way
        if line.startswith("epoch 3/"):
            break
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    assert proc.returncode == 130, rest
    assert rest.count("checkpoint saved to") == 1 and "Traceback" not in rest
    assert not out.exists()
    r = run_zoo("run", "--resume", default_path(out), "--nproc-per-node", "2", "-q", cwd=tmp_path)
    assert r.code == 0, r.stderr
    assert same_weights(load_file(out), tagger_two)
    assert not default_path(out).exists()


def test_a_killed_worker_is_restarted_from_the_last_checkpoint(tmp_path, tagger_two):
    out = tmp_path / "m.safetensors"
    proc = kill_after_first_checkpoint([*TAGGER_TWO, "--max-restarts", "1"], out, "restarted")
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr
    assert f"restart 1: continuing from {default_path(out)}" in stderr
    assert same_weights(load_file(out), tagger_two)


def test_without_restarts_a_killed_worker_is_one_error_and_the_checkpoint_resumes_on_one(
    tmp_path,
):
    """The previous model file stays as it was; the periodic checkpoint of the two-process
    run then resumes on one process, and ends where one process ends (to float tolerance)."""
    whole = tmp_path / "whole.safetensors"
    assert run_zoo(*REGRESSOR, "--out", whole, "-q", cwd=tmp_path).code == 0
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"the previous model")
    proc = kill_after_first_checkpoint([*REGRESSOR, "--nproc-per-node", "2"], out, "killed")
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "rank 1" in errors[0], stderr
    assert "Traceback" not in stderr
    assert out.read_bytes() == b"the previous model"
    r = run_zoo("run", "--resume", default_path(out), "-q", cwd=tmp_path)
    assert r.code == 0, r.stderr
    # the same sums in another order: float round-off, grown over 500 steps
    assert max_difference(load_file(out), load_file(whole)) < 1e-4
