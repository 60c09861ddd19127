"""Ctrl-C saves a checkpoint; resuming gives exactly the weights of an uninterrupted run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from tests.conftest import InterruptAt
from zoo.core.errors import DataError, ModelFileError, UsageError
from zoo.training.checkpoint import default_path
from zoo.training.trainer import TrainingInterrupted

# The toy tagger exercises all the state that must survive: dropout and word dropout (torch's
# RNG), length-bucketed shuffling (the epoch's shuffle RNG), Adam's moments, validation with
# best-weight selection, and a learning-rate schedule.
TAGGER = {"epochs": 6, "lr_schedule": "cosine", "warmup_steps": 3}


def weights(path):
    return load_file(path)


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "t.safetensors"
    zoo.run("lstm-tagger", out=out, **TAGGER)
    return weights(out)


@pytest.mark.parametrize("stop_at", [7, 10, 23])  # mid-epoch, the last batch of epoch 2, late
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, uninterrupted, stop_at):
    out = tmp_path / "t.safetensors"
    with pytest.raises(TrainingInterrupted, match=f"interrupted at step {stop_at} of 30") as e:
        zoo.run("lstm-tagger", out=out, progress=InterruptAt(stop_at), **TAGGER)
    ckpt = default_path(out)
    assert "zoo run --resume" in str(e.value) and ckpt.exists() and not out.exists()
    result = zoo.resume(ckpt)
    assert result.path == out and result.training.steps == 30
    assert same_weights(weights(out), uninterrupted)
    assert not ckpt.exists()  # the finished model supersedes it


@pytest.fixture(scope="module")
def uninterrupted_ema(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole-ema") / "t.safetensors"
    zoo.run("lstm-tagger", out=out, ema_decay=0.9, **TAGGER)
    return weights(out)


@pytest.mark.parametrize("stop_at", [7, 23])
def test_resume_with_weight_averaging_is_bit_identical(
    tmp_path, uninterrupted, uninterrupted_ema, stop_at
):
    out = tmp_path / "t.safetensors"
    with pytest.raises(TrainingInterrupted):
        zoo.run("lstm-tagger", out=out, progress=InterruptAt(stop_at), ema_decay=0.9, **TAGGER)
    saved = weights(default_path(out))
    assert {k[4:] for k in saved if k.startswith("ema/")} == set(uninterrupted_ema)
    zoo.resume(default_path(out))
    assert same_weights(weights(out), uninterrupted_ema)
    assert not same_weights(uninterrupted_ema, uninterrupted)


def test_resume_twice_and_with_periodic_checkpoints(tmp_path, uninterrupted):
    out = tmp_path / "t.safetensors"
    with pytest.raises(TrainingInterrupted):
        zoo.run("lstm-tagger", out=out, checkpoint_every=4, progress=InterruptAt(9), **TAGGER)
    ckpt = default_path(out)
    with pytest.raises(TrainingInterrupted):
        zoo.resume(ckpt, progress=InterruptAt(17))
    zoo.resume(ckpt)
    assert same_weights(weights(out), uninterrupted)


def test_periodic_checkpoints_are_written_and_resumable(tmp_path, uninterrupted, monkeypatch):
    out = tmp_path / "t.safetensors"
    seen = []
    import zoo.training.job as job_module

    original = job_module.save_checkpoint

    def spy(model, ckpt, path, **kwargs):
        original(model, ckpt, path, **kwargs)
        seen.append(ckpt.loop.step)
        Path(str(path) + f".{ckpt.loop.step}").write_bytes(Path(path).read_bytes())

    monkeypatch.setattr(job_module, "save_checkpoint", spy)
    zoo.run("lstm-tagger", out=out, checkpoint_every=8, **TAGGER)
    assert seen == [8, 16, 24]
    monkeypatch.undo()
    copy = tmp_path / "again.ckpt.safetensors"
    copy.write_bytes(Path(str(default_path(out)) + ".16").read_bytes())
    zoo.resume(copy, out=tmp_path / "again.safetensors")
    assert same_weights(weights(tmp_path / "again.safetensors"), uninterrupted)


def test_resume_refuses_model_settings_other_data_and_model_files(tmp_path):
    out = tmp_path / "t.safetensors"
    with pytest.raises(TrainingInterrupted):
        zoo.run("lstm-tagger", out=out, progress=InterruptAt(3), **TAGGER)
    ckpt = default_path(out)
    with pytest.raises(UsageError, match="only training settings can change"):
        zoo.resume(ckpt, hidden_size=3)
    zoo.resume(ckpt, lr=0.001)  # a training setting may change, e.g. after a divergence
    with pytest.raises(ModelFileError, match="a finished model file, not a training checkpoint"):
        zoo.resume(out)
    with pytest.raises(ModelFileError, match="a training checkpoint, not a model file"):
        with pytest.raises(TrainingInterrupted):
            zoo.run("lstm-tagger", out=out, progress=InterruptAt(3), **TAGGER)
        zoo.load(ckpt)


def test_resume_notices_changed_data(tmp_path):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("cat\tgato\ndog\tperro\n")
    out = tmp_path / "s.safetensors"
    with pytest.raises(TrainingInterrupted):
        zoo.run("rnn-seq2seq", data=pairs, out=out, epochs=50, progress=InterruptAt(5))
    pairs.write_text("cat\tgato\nfish\tpez\n")
    with pytest.raises(DataError, match="the data differs from when the checkpoint was written"):
        zoo.resume(default_path(out))


CTRL_C_RUN = ["run", "lstm-tagger", "--epochs", "150", "--set", "lr_schedule=linear"]


@pytest.fixture(scope="module")
def uninterrupted_cli(tmp_path_factory):
    """The weights of the command-line run the interrupted ones must end at."""
    out = tmp_path_factory.mktemp("whole") / "whole.safetensors"
    zoo_exe = Path(sys.executable).parent / "zoo"
    whole = subprocess.run(
        [zoo_exe, *CTRL_C_RUN, "--out", out, "-q"], capture_output=True, text=True, timeout=300
    )
    assert whole.returncode == 0, whole.stderr
    return weights(out)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_on_the_command_line(tmp_path, signum, uninterrupted_cli):
    """A real `zoo run` process gets SIGINT (Ctrl-C) or SIGTERM (what SLURM, Kubernetes and
    torchrun send before they stop a job), exits 128 + the signal with a checkpoint; resuming
    it gives the weights of an uninterrupted `zoo run`."""
    zoo_exe = Path(sys.executable).parent / "zoo"
    out = tmp_path / "cut.safetensors"
    proc = subprocess.Popen([zoo_exe, *CTRL_C_RUN, "--out", out], stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # wait until training is under way
        if line.startswith("epoch 2/"):
            break
    time.sleep(0.5)
    proc.send_signal(signum)
    _, rest = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, rest
    assert "checkpoint saved to" in rest and "Traceback" not in rest
    resumed = subprocess.run(
        [zoo_exe, "run", "--resume", default_path(out), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert same_weights(weights(out), uninterrupted_cli)


def test_resume_mistakes_on_the_command_line(zoo, tmp_path):
    r = zoo("run")
    assert r.code == 2 and "give the architecture NAME" in r.error_line()
    r = zoo("run", "--resume", tmp_path / "missing.ckpt.safetensors")
    assert r.code == 1 and "no such model file" in r.error_line()
    out = tmp_path / "t.safetensors"
    with pytest.raises(TrainingInterrupted):
        zoo_run_interrupted(out)
    r = zoo("run", "--resume", default_path(out), "--data", "x")
    assert r.code == 2 and r.error_line() == (
        "Error: the data comes from the checkpoint when resuming: give no dataset, data, dev or "
        "test (--dataset, --data, --dev, --test)"
    )
    r = zoo("run", "gru-regressor", "--resume", default_path(out))
    assert r.code == 2 and "the checkpoint is of lstm-tagger, not gru-regressor" in r.error_line()


def zoo_run_interrupted(out):
    zoo.run("lstm-tagger", out=out, progress=InterruptAt(2), **TAGGER)


def test_a_restarted_job_continues_its_own_checkpoint_only(tmp_path, monkeypatch):
    """After torchrun restarts the processes (TORCHELASTIC_RESTART_COUNT > 0), `run` takes the
    checkpoint this same job (TORCHELASTIC_RUN_ID) wrote, never another job's."""
    from zoo.training.job import _checkpoint_of_this_job

    out = tmp_path / "t.safetensors"
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-a")
    with pytest.raises(TrainingInterrupted):
        zoo_run_interrupted(out)
    assert _checkpoint_of_this_job(out, 5) is None  # the first attempt starts afresh
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert _checkpoint_of_this_job(out, 5) == default_path(out)
    assert _checkpoint_of_this_job(out, 0) is None  # no --checkpoint-every: from the start
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-b")
    assert _checkpoint_of_this_job(out, 5) is None
