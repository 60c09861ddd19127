"""Writes survive crashes: kill -9 during a save leaves the previous file whole and loadable,
and an output that cannot be written is refused before any training starts."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import zoo

SAVER = textwrap.dedent("""
    import sys, zoo
    path = sys.argv[1]
    model = zoo.create("elman-rnn", hidden_size=1200, num_sequences=8, epochs=1)
    i = 0
    while True:
        model.metrics["version"] = i
        zoo.save(model, path)
        print(i, flush=True)
        i += 1
""")


@pytest.mark.slow
def test_kill_9_during_saves_never_leaves_a_broken_model_file(tmp_path):
    """A process saving a ~6 MB model over and over is killed at random moments; each time
    the file on disk is a complete model, one of the versions the process finished."""
    path = tmp_path / "m.safetensors"
    rng = random.Random(1)
    for _ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE, text=True
        )
        finished = [int(proc.stdout.readline())]  # at least one complete save
        time.sleep(rng.uniform(0.05, 0.6))  # then kill it somewhere in a later save
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        finished += [int(line) for line in proc.stdout.read().split()]
        model = zoo.load(path)
        # the version last reported, or the next one if the kill came between its rename
        # and its print: complete either way
        assert model.metrics["version"] in (finished[-1], finished[-1] + 1)
        assert model.config.hidden_size == 1200


@pytest.mark.parametrize("where", ["missing-folder", "read-only"])
def test_unwritable_output_is_refused_before_training(zoo, tmp_path, where):
    if where == "missing-folder":
        out = tmp_path / "nope" / "m.safetensors"
    elif os.geteuid() == 0:  # root writes through permission bits; /proc refuses anyone
        out = "/proc/self/m.safetensors"
    else:
        folder = tmp_path / "ro"
        folder.mkdir(mode=0o500)
        out = folder / "m.safetensors"
    start = time.perf_counter()
    r = zoo("run", "gru-regressor", "--out", out)
    assert r.code == 2
    assert "does not exist" in r.error_line() or "is not writable" in r.error_line()
    assert time.perf_counter() - start < 5  # refused up front, not after training


def test_same_seed_same_file_from_the_command_line(zoo, tmp_path):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    for out in (a, b):
        assert (
            zoo("run", "lstm-tagger", "--epochs", "3", "--seed", "5", "-q", "--out", out).code == 0
        )
    from safetensors.torch import load_file

    ta, tb = load_file(a), load_file(b)
    assert all((ta[k] == tb[k]).all() for k in ta)
