"""Fault injection: signals at random moments, and a disk that fills at random points, while
`zoo run` and `zoo predict --output` work. Whatever happens, no file is clobbered or left
half-written (each is the old one or a whole new one, and no temporary file stays behind),
and every run-log row says truly how its command ended. The moments are drawn from seeded
generators (where in the work a moment falls still varies with the machine's speed);
docs/reliability.md gives the case counts."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import fill
from zoo.core.modelfile import read_info
from zoo.features.runlog import RunLog, RunLogError

pytestmark = pytest.mark.slow

ZOO = Path(sys.executable).parent / "zoo"
SIGNAL_CASES = 6  # per command
DISK_CASES = 6
TRAIN = ["run", "gru-regressor", "--epochs", "40", "--set", "num_windows=200", "-q"]


def _zoo(args: list, cwd: Path, home: Path) -> subprocess.Popen:
    env = {**os.environ, "ZOO_HOME": str(home)}
    return subprocess.Popen(
        [str(ZOO), *map(str, args)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _signal_at_random(
    p: subprocess.Popen, rng: random.Random, low: float, high: float, timeout: int
) -> str:
    """SIGINT or SIGTERM to `p` after a random `low`-`high` seconds, unless it ended first;
    its stderr once it has ended."""
    try:
        p.wait(timeout=rng.uniform(low, high))
    except subprocess.TimeoutExpired:
        p.send_signal(rng.choice([signal.SIGINT, signal.SIGTERM]))
    return p.communicate(timeout=timeout)[1]


def _whole_model(path: Path) -> bool:
    try:
        info = read_info(path)
    except Exception:
        return False
    return info["kind"] in ("model", "checkpoint")


def _check_files(folder: Path, before: dict[str, bytes], whole: dict[str, object]) -> None:
    """Every file is as it was, or whole by its kind's test; no temporary file is left."""
    for path in folder.iterdir():
        assert ".tmp" not in path.name, f"left behind: {path.name}"
        if path.name in ("filler",) or path.name.startswith("runs.sqlite"):
            continue
        if path.name.startswith(".runs.sqlite.reserve-"):
            raise AssertionError(f"a finished command left its reserve: {path.name}")
        if before.get(path.name) == path.read_bytes():
            continue
        if path.suffix == ".safetensors":
            assert _whole_model(path), f"{path.name} is neither the old file nor a whole one"
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.name in whole:
            assert path.read_text() == whole[path.name], f"{path.name} is half-written"


def _rows(home: Path) -> list[dict]:
    """The log's rows; none where it was never begun (or begun on a full disk: empty)."""
    if not (home / "runs.sqlite").exists():
        return []
    try:
        log = RunLog.open(home / "runs.sqlite", create=False)
    except RunLogError as e:
        assert "it is empty" in str(e)
        return []
    try:
        return log.find()
    finally:
        log.close()


def _check_status(code: int, rows: list[dict], stderr: str) -> None:
    """The row of the one command says how it ended (or there is none: the log could not be
    written, said in a warning, or the process died before it could begin one)."""
    assert "Traceback" not in stderr, stderr
    assert len(rows) <= 1
    status = rows[0]["status"] if rows else None
    print(f"exit {code}, row {status}")  # shown with -s: which outcomes the moments gave
    if status == "finished":  # then the model it names is whole, whatever came after
        assert _whole_model(Path(rows[0]["model_path"]))
    if code == 0:
        assert status in ("finished", None), (code, status)
        assert status == "finished" or "warning: run log" in stderr
    elif code in (130, 143):
        assert status in ("interrupted", None), (code, status, stderr)
    elif code < 0:  # killed by the signal outside zoo's handlers: before, or after the end
        assert status in ("killed", None, "finished"), (code, status)
    else:
        assert code == 1, (code, stderr)
        assert stderr.strip().splitlines()[-1].startswith("Error: "), stderr
        assert status in ("failed", None), (code, status, stderr)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("trained")
    p = _zoo(
        [*TRAIN[:2], "--epochs", "1", "--set", "num_windows=40", "--out", "old.safetensors"],
        folder,
        folder,
    )
    assert p.wait(timeout=300) == 0, p.stderr.read()
    return folder / "old.safetensors"


@pytest.mark.parametrize("case", range(SIGNAL_CASES))
def test_signals_at_random_moments_of_zoo_run(tmp_path, trained, case):
    rng = random.Random(case)
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(), work.mkdir()
    (work / "m.safetensors").write_bytes(trained.read_bytes())
    before = {"m.safetensors": trained.read_bytes()}
    args = [*TRAIN, "--out", "m.safetensors", "--metrics-out", "m.json", "--checkpoint-every", "5"]
    p = _zoo(args, work, home)
    stderr = _signal_at_random(p, rng, 0.5, 6.0, 120)
    _check_files(work, before, {})
    _check_status(p.returncode, _rows(home), stderr)


@pytest.mark.parametrize("case", range(DISK_CASES))
def test_a_disk_filling_at_random_points_of_zoo_run(tmp_path, tiny_disk, trained, case):
    rng = random.Random(100 + case)
    (tiny_disk / "m.safetensors").write_bytes(trained.read_bytes())
    before = {"m.safetensors": trained.read_bytes()}
    fill(tiny_disk)
    filler = tiny_disk / "filler"
    os.truncate(filler, max(0, filler.stat().st_size - rng.randrange(0, 400_000, 4096)))
    args = [
        *TRAIN[:2],
        "--epochs",
        "3",
        "--set",
        "num_windows=200",
        "-q",
        "--out",
        "m.safetensors",
        "--metrics-out",
        "m.json",
        "--checkpoint-every",
        "3",
    ]
    p = _zoo(args, tiny_disk, tiny_disk)
    _, stderr = p.communicate(timeout=300)
    _check_files(tiny_disk, before, {})
    _check_status(p.returncode, _rows(tiny_disk), stderr)


@pytest.mark.parametrize("case", range(SIGNAL_CASES))
def test_signals_at_random_moments_of_zoo_predict_output(tmp_path, trained, case):
    rng = random.Random(200 + case)
    lines = "".join(f"{' '.join(str(rng.random()) for _ in range(10))}\n" for _ in range(30_000))
    (tmp_path / "in.txt").write_text(lines)
    (tmp_path / "out.txt").write_text("old predictions\n")
    before = {"out.txt": b"old predictions\n", "in.txt": lines.encode()}
    args = ["predict", trained, "--input", "in.txt", "--output", "out.txt"]
    p = _zoo(args, tmp_path, tmp_path)
    stderr = _signal_at_random(p, rng, 0.5, 5.0, 120)
    assert "Traceback" not in stderr
    out = (tmp_path / "out.txt").read_text()
    assert out == "old predictions\n" or len(out.splitlines()) == 30_000, out[:100]
    _check_files(tmp_path, before, {})


SWEEP_CASES = 4


def _sweep(folder: Path, home: Path) -> subprocess.Popen:
    args = ["sweep", "gru-regressor", "--set", "num_windows=60", "--steps", "20",
            "--set", "lr=loguniform(1e-3,3e-2)", "--trials", "3", "--jobs", "2",
            "--storage", f"sqlite:///{folder / 'study.sqlite'}", "--study", "faults",
            "--models", folder / "models"]  # fmt: skip
    return _zoo(args, folder, home)


def _check_sweep(folder: Path, home: Path) -> int:
    """Study and run log agree trial by trial; the best model is whole; nothing half-written.
    Returns the number of complete trials."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = f"sqlite:///{folder / 'study.sqlite'}"
    trials = optuna.load_study(study_name="faults", storage=storage).get_trials()
    complete = {t.number for t in trials if t.state.name == "COMPLETE"}
    rows = [r for r in _rows(home) if r["command"] == "run"]
    assert all(r["status"] in ("finished", "interrupted", "failed") for r in rows), rows
    finished = {r["trial"]: r for r in rows if r["status"] == "finished"}
    assert set(finished) == complete, (sorted(finished), sorted(complete))
    for path in (folder / "models").rglob("*"):
        assert ".tmp" not in path.name, path
        if path.suffix == ".safetensors":
            assert _whole_model(path), path
    if complete:
        best = min((t for t in trials if t.number in complete), key=lambda t: t.value)
        assert _whole_model(Path(finished[best.number]["model_path"]))
    return len(complete)


@pytest.mark.parametrize("case", range(SWEEP_CASES))
def test_signals_at_random_moments_of_zoo_sweep(tmp_path, case):
    """A sweep signalled at a random moment, then run again to its end: at each point the
    study, the run log and the model files agree, and the rerun ends with exactly --trials."""
    rng = random.Random(300 + case)
    p = _sweep(tmp_path, tmp_path)
    stderr = _signal_at_random(p, rng, 2.0, 14.0, 180)
    assert "Traceback" not in stderr, stderr
    if (tmp_path / "study.sqlite").exists():
        _check_sweep(tmp_path, tmp_path)
    p = _sweep(tmp_path, tmp_path)
    _, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, stderr
    assert _check_sweep(tmp_path, tmp_path) == 3
