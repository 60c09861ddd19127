"""Shared fixtures: an in-process `zoo` command, subprocess runs, and temporary registries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from zoo.cli import cli
from zoo.registry import get_registry, reset_registry

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


class Result:
    def __init__(self, code: int, stdout: str, stderr: str):
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def json(self):
        return json.loads(self.stdout)

    def error_line(self) -> str:
        """The single `Error: ...` line a user mistake must produce (and nothing else)."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        assert "Traceback" not in self.stderr, self.stderr
        errors = [line for line in lines if line.startswith("Error:")]
        assert len(errors) == 1, self.stderr
        return errors[0]


@pytest.fixture
def one_thread():
    """zoo's default: small recurrent models on a shared CPU are fastest on one thread.
    Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    """Run `zoo ARGS...` in-process in a fresh working folder; returns a Result."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        r = runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)
        return Result(r.exit_code, r.stdout, r.stderr)

    return invoke


def run_zoo(
    *args: str, env: dict | None = None, cwd: Path | None = None, timeout: int = 300
) -> Result:
    """Run the installed `zoo` console script in a subprocess."""
    exe = Path(sys.executable).parent / "zoo"
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "zoo"]
    p = subprocess.run(
        [*command, *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
    )
    return Result(p.returncode, p.stdout, p.stderr)


@pytest.fixture
def use_registry():
    """Install a registry for the duration of a test, then restore the real one."""
    saved = get_registry()

    def install(registry):
        reset_registry(registry)
        return registry

    yield install
    reset_registry(saved)
