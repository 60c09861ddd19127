"""Benchmarks refuse a wrong option with one usage line and exit 2, before measuring
anything: a wrong checkout would otherwise time the installed zoo, a misspelt part fail
minutes into a run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.parametrize(
    ("script", "args", "says"),
    [
        ("default_runs.py", ["--checkouts", "/nonexistent-zoo"], "not a zoo checkout"),
        (
            "default_runs.py",
            ["--checkouts", str(BENCHMARKS.parent), "--repeats", "0"],
            "--repeats: expected a whole number",
        ),
        ("data_scale.py", ["--parts", "evl"], "invalid choice: 'evl'"),
        ("lstm_layer_speed.py", ["--steps", "12,0"], "--steps: expected whole numbers"),
    ],
)
def test_a_wrong_option_is_one_usage_line_and_exit_2(script, args, says, tmp_path):
    run = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert run.returncode == 2
    assert says in run.stderr and "Traceback" not in run.stderr
    assert not any(tmp_path.iterdir())  # nothing written
