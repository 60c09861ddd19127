"""Shared fixtures: an in-process `zoo` command, subprocess runs, temporary registries, and
`scripted_registry`, the one test plugin whose network the tests steer or make misbehave."""

from __future__ import annotations

import errno
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from torch import nn

# CI's skip policy (tests/skips.py): with ZOO_STRICT_SKIPS=1, as .ci/run sets it, a skip that
# policy does not allow fails the session. This hook is the one tests/core/test_skip_policy.py
# loads, by `-p tests.skips`, to show it works.
from tests.skips import pytest_configure  # noqa: F401
from zoo import Architecture, Dataset, hookimpl, param
from zoo.cli import cli
from zoo.core.registry import Registry, get_registry, reset_registry
from zoo.toolkit.data import Data
from zoo.toolkit.network import Network
from zoo.training.progress import Progress

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


@pytest.fixture(autouse=True)
def zoo_home(tmp_path_factory, monkeypatch):
    """Every test's run log (zoo/features/runlog.py) in a folder of its own, never the user's."""
    home = tmp_path_factory.mktemp("zoo-home")
    monkeypatch.setenv("ZOO_HOME", str(home))
    return home


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
def no_matplotlib(monkeypatch):
    """matplotlib (the `plot` extra) cannot be imported, as on a plain install."""
    for name in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)


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


# ----------------------------------------------------------------- a scripted test plugin
@dataclass
class ScriptedConfig:
    width: int = param(1, "unused: an architecture needs a config")


class Scripted(Network):
    """One linear weight, whose validation scores come from a script, so that tests can
    steer the training loop's decisions (best weights, early stopping, divergence) and
    replace any method with one that misbehaves. `scripted_registry` makes a subclass per
    registry, with its own script and call counts (class attributes: a deep copy of the
    network for weight averaging shares them)."""

    scores: tuple[float, ...] = (1.0,)
    nan_at: int | None = None
    calls: dict[str, int] = {}  # noqa: RUF012 (replaced per subclass)

    def __init__(self, config: Any, state: dict[str, Any]):
        super().__init__(config, state)
        self.layer = nn.Linear(1, 1)

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        self.calls["loss"] = self.calls.get("loss", 0) + 1
        out = self.layer(batch["x"]).pow(2).mean()
        if self.nan_at is not None and self.calls["loss"] >= self.nan_at:
            return out * float("nan")
        return out

    def evaluate(self, batches: Any) -> dict[str, Any]:
        list(batches)
        done = self.calls.get("evaluate", 0)
        self.calls["evaluate"] = done + 1
        # the weight tells which weights produced which score
        return {
            "loss": self.scores[min(done, len(self.scores) - 1)],
            "weight": float(self.layer.weight.item()),
        }

    def predict(self, inputs: list[str], options: Any) -> list[dict[str, Any]]:
        return [{"input": i, "output": len(i), "text": str(len(i))} for i in inputs]


def scripted_data(config: Any, state: dict[str, Any] | None) -> Data:
    """Eight one-number examples; the first two are also the valid and the test split."""
    examples = [[float(i)] for i in range(8)]
    return Data(
        state={},
        splits={"train": examples, "valid": examples[:2], "test": examples[:2]},
        collate=lambda ex: {"x": torch.tensor(ex)},
    )


def plugin_of(architectures: Sequence[Any] = (), datasets: Sequence[Any] = ()) -> Any:
    """A plugin object registering exactly these specs (anything: malformed ones too), for
    `Registry.from_plugins([(plugin, name, distribution, version)])`."""
    plugin = types.SimpleNamespace()

    @hookimpl
    def register_architectures(register: Any) -> None:
        for spec in architectures:
            register(spec)

    @hookimpl
    def register_datasets(register: Any) -> None:
        for spec in datasets:
            register(spec)

    plugin.register_architectures = register_architectures
    plugin.register_datasets = register_datasets
    return plugin


def scripted_registry(
    scores: Sequence[float] = (1.0,),
    *,
    nan_at: int | None = None,
    name: str = "scripted",
    distribution: str = "test-dist",
    version: str = "1",
    implementation: Any = None,
    loader: Any = scripted_data,
    **methods: Any,
) -> tuple[Registry, dict[str, int]]:
    """A registry holding one plugin `name` (from `distribution` `version`) with architecture
    `name` and dataset "toy", and the network's call counts (`loss`, `evaluate`).

    `methods` replace the network's methods (`loss=lambda self, batch: 1.5`), `implementation`
    replaces what builds the network, `loader` the dataset's loader: how a misbehaving plugin
    is made."""
    calls: dict[str, int] = {"loss": 0, "evaluate": 0}
    attributes = {"scores": tuple(scores), "nan_at": nan_at, "calls": calls, **methods}
    network = type(f"Scripted_{name.replace('-', '_')}", (Scripted,), attributes)
    architecture = Architecture(
        name=name,
        description="a scripted network",
        tasks=("toy",),
        config=ScriptedConfig,
        default_dataset="toy",
        implementation=network if implementation is None else implementation,
    )
    toy = Dataset(name="toy", description="", task="toy", config=ScriptedConfig, loader=loader)
    plugin = plugin_of([architecture], [toy])
    return Registry.from_plugins([(plugin, name, distribution, version)]), calls


# ------------------------------------------------------------------ reading data files
# Fuzzing a reader: a few dozen files each, slow fixtures allowed.
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def write(folder: Path, name: str, content: str | bytes) -> Path:
    """A file of exactly `content` (text is written as UTF-8, line ends untouched)."""
    path = folder / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def load_dataset(dataset: str, state: dict[str, Any] | None = None, **values: Any) -> Data:
    """The installed dataset loaded as `zoo run` loads it (`zoo.api.load_data`): file-system
    errors become DataErrors and any other exception a PluginError, which a reader test
    counts as a failure. `values` are its settings, as `--set` would give them."""
    from zoo.api import load_data
    from zoo.core import config as cfg

    spec = get_registry().dataset(dataset).spec
    config = cfg.build(spec.config, {k: str(v) for k, v in values.items()})
    return load_data(get_registry(), dataset, config, state)


def file_contents(alphabet: str) -> st.SearchStrategy[bytes]:
    """What a fuzzed reader is fed: text made of its format's characters (so random input
    reaches the parser; random bytes mostly stop at the UTF-8 check), or random bytes."""
    return st.one_of(
        st.text(alphabet=alphabet, max_size=300).map(lambda s: s.encode("utf-8")),
        st.binary(max_size=200),
    )


def loads_or_data_error(
    dataset: str, name: str, content: bytes, state: dict[str, Any] | None = None, **values: Any
) -> None:
    """Load `content` as file `name` of `dataset`: it loads with a training split (or, when
    evaluating, at all), or raises a one-line DataError that starts with the file's path."""
    from zoo.core.errors import DataError

    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder), name, content)
        try:
            data = load_dataset(dataset, state, path=path, **values)
        except DataError as e:
            assert str(e).startswith(str(path)) and "\n" not in str(e), str(e)
            return
        assert data.has("train") or state is not None


# Small valid files of the built-in formats.
CONLLU = (
    "# text = Dogs bark.\n"
    "1\tDogs\tdog\tNOUN\tNNS\t_\t2\tnsubj\t_\t_\n"
    "2\tbark\tbark\tVERB\tVBP\t_\t0\troot\t_\t_\n"
    "3\t.\t.\tPUNCT\t.\t_\t2\tpunct\t_\t_\n"
    "\n"
)
SERIES = "date,v\n" + "".join(f"2020-01-01 {h:02d}:00:00,{h % 5}\n" for h in range(24))
# csv settings that fit SERIES (24 rows)
CSV_SMALL = {"input_length": 4, "horizon": 2, "split": "0.5,0.25,0.25"}


@functools.cache
def loaded_model(path: Path) -> Any:
    """A saved model, loaded once per test session (for fuzzing its predict_file)."""
    import zoo

    return zoo.load(path)


def predicts_or_zoo_error(model: Path, name: str, content: bytes) -> None:
    """`zoo predict MODEL --input FILE` (`zoo.predict_file`) on `content` as file `name`:
    predictions, or a one-line DataError/UsageError naming the file, nothing else."""
    import zoo
    from zoo.core.errors import DataError, UsageError

    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder), name, content)
        try:
            text, predictions = zoo.predict_file(loaded_model(model), path)
        except (DataError, UsageError) as e:
            assert "\n" not in str(e) and str(path) in str(e), str(e)
            return
    assert isinstance(text, str) and isinstance(predictions, list)


class InterruptAt(Progress):
    """A progress display that sends this process a real SIGINT when training reaches a
    given step: Ctrl-C, at a step of the test's choosing."""

    def __init__(self, step: int):
        super().__init__(enabled=False)
        self.at = step

    def step(self, step: int, epoch: int, loss: float) -> None:
        if step == self.at:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 1 MiB tmpfs (root only; skipped where it cannot be mounted)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mount = shutil.which("mount")
    if mount is None:
        pytest.skip("no mount command")
    p = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if p.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {p.stderr.strip() or p.returncode}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def fill(folder: Path) -> None:
    """Fill the disk of `folder` to the last byte (a file `filler`)."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
    finally:
        os.close(fd)
