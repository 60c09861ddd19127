"""`zoo run --nproc-per-node N` and friends (zoo/training/launch.py, the launcher part of zoo/cli/):
the torchrun command line, the checks of the launcher options, the arguments the workers get,
signals passed on, and runs on two processes and on two "machines" on localhost."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import run_zoo
from zoo.cli import cli
from zoo.core.errors import UsageError
from zoo.training import launch

ARGS = ["gru-regressor", "--epochs=1", "--set=hidden_size=8", "--lr=-0.5"]


def torchrun_options(command: list[str]):
    """The command's torchrun options as torchrun itself parses them."""
    from torch.distributed.run import parse_args

    assert command[:3] == [sys.executable, "-m", "zoo.training.launch"]
    return parse_args(command[3:])


# ---------------------------------------------------------------------- torchrun_command
def test_one_machine_is_a_standalone_rendezvous_and_the_arguments_pass_through():
    command = launch.torchrun_command(ARGS, nproc_per_node=2)
    assert command[-len(ARGS) - 3 :] == ["-m", "zoo", "run", *ARGS]
    options = torchrun_options(command)
    assert options.standalone and options.nproc_per_node == "2"
    assert options.module and options.training_script == "zoo"
    assert options.training_script_args == ["run", *ARGS]
    assert options.max_restarts == 0
    assert "join_timeout=60" in options.rdzv_conf
    assert "--rdzv-endpoint" not in command


def test_several_machines_use_c10d_on_the_endpoint():
    command = launch.torchrun_command(
        ARGS,
        nproc_per_node=4,
        nnodes="2",
        node_rank=1,
        rdzv_endpoint="10.0.0.1:29500",
        rdzv_id="job7",
        max_restarts=3,
        join_timeout=9,
    )
    options = torchrun_options(command)
    assert not options.standalone
    assert (options.rdzv_backend, options.rdzv_endpoint, options.rdzv_id) == (
        "c10d",
        "10.0.0.1:29500",
        "job7",
    )
    assert (options.nnodes, options.node_rank, options.nproc_per_node) == ("2", 1, "4")
    assert options.max_restarts == 3
    assert "join_timeout=9" in options.rdzv_conf
    assert options.training_script_args == ["run", *ARGS]


def test_an_endpoint_on_one_machine_and_elastic_node_counts():
    one = torchrun_options(
        launch.torchrun_command([], nproc_per_node=1, rdzv_endpoint="localhost:1234")
    )
    assert not one.standalone and one.rdzv_endpoint == "localhost:1234" and one.nnodes == "1"
    assert one.rdzv_id == "zoo"
    elastic = torchrun_options(
        launch.torchrun_command([], nproc_per_node=1, nnodes="1:3", rdzv_endpoint="h:29500")
    )
    assert elastic.nnodes == "1:3" and elastic.rdzv_backend == "c10d"


# ------------------------------------------------------------------------------- check
@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"nproc_per_node": 0}, "--nproc-per-node 0"),
        ({"nproc_per_node": -3}, "--nproc-per-node -3"),
        ({"nproc_per_node": 1, "rdzv_endpoint": "localhost"}, "HOST:PORT"),
        ({"nproc_per_node": 1, "rdzv_endpoint": ":29500"}, "HOST:PORT"),
        ({"nproc_per_node": 1, "rdzv_endpoint": "host:"}, "1 to 65535"),
        ({"nproc_per_node": 1, "rdzv_endpoint": "host:0"}, "1 to 65535"),
        ({"nproc_per_node": 1, "rdzv_endpoint": "host:65536"}, "1 to 65535"),
        ({"nproc_per_node": 1, "rdzv_endpoint": "host:http"}, "1 to 65535"),
        ({"nproc_per_node": 1, "rdzv_endpoint": "::1:29500"}, "HOST:PORT"),
        ({"nproc_per_node": 1, "node_rank": 0}, "--node-rank needs --nnodes"),
        (
            {"nproc_per_node": 1, "nnodes": "2", "node_rank": 2, "rdzv_endpoint": "h:1"},
            "--node-rank 2",
        ),
        ({"nproc_per_node": 1, "nnodes": "two"}, "--nnodes 'two'"),
        ({"nproc_per_node": 1, "nnodes": "0"}, "--nnodes '0'"),
        ({"nproc_per_node": 1, "nnodes": "3:2"}, "--nnodes '3:2'"),
        ({"nproc_per_node": 1, "nnodes": "2"}, "needs --rdzv-endpoint"),
    ],
)
def test_each_usage_error_is_one_clear_line(kwargs, fragment):
    with pytest.raises(UsageError) as caught:
        launch.check(**kwargs, warn=pytest.fail)
    message = str(caught.value)
    assert fragment in message and "\n" not in message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"rdzv_endpoint": "localhost:29500"},
        {"rdzv_endpoint": "10.0.0.1:1"},
        {"rdzv_endpoint": "[::1]:65535"},
        {"nnodes": "2", "node_rank": 1, "rdzv_endpoint": "node0.cluster:29500"},
        {"nnodes": "1:4", "node_rank": 3, "rdzv_endpoint": "h:29500"},
        {"nnodes": "1"},
    ],
)
def test_good_options_pass(kwargs):
    launch.check(1, **kwargs, cpu_count=64, warn=pytest.fail)


def test_more_threads_than_cores_is_one_warning(capsys):
    warnings: list[str] = []
    launch.check(2, threads=1, cpu_count=2, warn=warnings.append)
    launch.check(1, threads=2, cpu_count=2, warn=warnings.append)
    assert warnings == []
    launch.check(3, threads=None, cpu_count=2, warn=warnings.append)  # zoo's default: 1
    launch.check(2, threads=0, cpu_count=2, warn=warnings.append)  # torch's default: all
    assert len(warnings) == 2 and all(w.startswith("warning: ") for w in warnings)
    assert "3 processes x 1 thread(s) on 2 CPU core(s)" in warnings[0]
    launch.check(2, threads=4, cpu_count=4)  # on stderr, one line
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and err.count("\n") == 1


def test_a_bad_rendezvous_timeout_is_a_usage_error(monkeypatch):
    monkeypatch.setenv("ZOO_RDZV_TIMEOUT", "soon")
    with pytest.raises(UsageError, match="ZOO_RDZV_TIMEOUT"):
        launch.check(1)
    monkeypatch.setenv("ZOO_RDZV_TIMEOUT", "5")
    assert launch.rendezvous_timeout() == 5


def test_a_worker_is_recognised_by_torchruns_variables():
    assert not launch.in_worker({})
    assert launch.in_worker({"RANK": "0"})
    assert launch.in_worker({"TORCHELASTIC_RUN_ID": "x"})


# -------------------------------------------------------------------------- the command line
@pytest.fixture
def launched(monkeypatch):
    """Stand-in for zoo.launch.launch: records what `zoo run` would start, returns `code`."""
    for name in launch.WORKER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    calls: list[dict] = []

    def fake(args, **kwargs):
        calls.append({"args": list(args), **kwargs})
        return fake.code

    fake.code = 0
    monkeypatch.setattr(launch, "launch", fake)
    fake.calls = calls
    return fake


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--nproc-per-node", "0"], "--nproc-per-node 0"),
        (["--nproc-per-node", "2", "--rdzv-endpoint", "nohost"], "--rdzv-endpoint 'nohost'"),
        (["--nproc-per-node", "2", "--rdzv-endpoint", "h:99999"], "1 to 65535"),
        (["--node-rank", "1"], "--node-rank needs --nnodes"),
        (["--nproc-per-node", "2", "--nnodes", "2"], "needs --rdzv-endpoint"),
        (["--max-restarts", "2"], "--max-restarts needs --nproc-per-node"),
    ],
)
def test_cli_launcher_mistakes_exit_2_with_one_error_line(zoo, launched, args, fragment):
    r = zoo("run", "elman-rnn", *args)
    assert r.code == 2
    assert fragment in r.error_line()
    assert launched.calls == []


def test_cli_starts_torchrun_with_the_other_arguments(zoo, launched, tmp_path):
    launched.code = 3
    r = zoo(
        "run",
        "gru-regressor",
        "--epochs",
        "1",
        "--nproc-per-node",
        "2",
        "--set",
        "hidden_size=8",
        "--set",
        "window_norm=-1",
        "-q",
        "--json",
        "--lr",
        "0.25",
        "--out",
        "m.safetensors",
        "--metrics-out",
        "m.json",
        "--max-restarts",
        "1",
        "--rdzv-id",
        "job",
    )
    assert r.code == 3, r.stderr  # torchrun's exit code
    [call] = launched.calls
    assert call["args"] == [
        "gru-regressor",
        "--epochs=1",
        "--lr=0.25",
        "--out=m.safetensors",
        "--set=hidden_size=8",
        "--set=window_norm=-1",
        "--metrics-out=m.json",
        "--quiet",
        "--json",
    ]
    assert call["nproc_per_node"] == 2 and call["max_restarts"] == 1
    assert call["rdzv_id"] == "job" and call["nnodes"] is None and call["threads"] is None
    assert not (tmp_path / "m.safetensors").exists() and r.stdout == ""


def test_cli_reads_the_launcher_options_from_the_environment(launched, monkeypatch):
    monkeypatch.setenv("ZOO_RUN_NPROC_PER_NODE", "2")
    monkeypatch.setenv("ZOO_RUN_EPOCHS", "1")
    r = CliRunner().invoke(cli, ["run", "elman-rnn"], auto_envvar_prefix="ZOO")  # as main()
    assert r.exit_code == 0, r.output
    [call] = launched.calls
    assert call["nproc_per_node"] == 2 and call["args"] == ["elman-rnn", "--epochs=1"]


def test_cli_checks_the_name_before_starting_processes(zoo, launched):
    r = zoo("run", "no-such-net", "--nproc-per-node", "2")
    assert r.code == 2 and "no-such-net" in r.error_line()
    assert launched.calls == []


def test_a_worker_ignores_the_launcher_options(zoo, launched, monkeypatch):
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")
    r = zoo("run", "elman-rnn", "--nproc-per-node", "0", "--dataset", "no-such-data")
    assert r.code == 2 and "no-such-data" in r.error_line()
    assert launched.calls == []


# ------------------------------------------------------------------------------- signals
CHILD = """
import pathlib, signal, sys, time
got = []
signal.signal(signal.SIGTERM, lambda *a: got.append(1))
pathlib.Path(sys.argv[1]).write_text("ready")
deadline = time.time() + 30
while not got and time.time() < deadline:
    time.sleep(0.05)
sys.exit(5 if got else 9)
"""


def test_a_signal_is_passed_to_the_child_once_and_ends_as_128_plus_it(monkeypatch, tmp_path):
    ready = tmp_path / "ready"
    monkeypatch.setattr(
        launch, "torchrun_command", lambda *a, **k: [sys.executable, "-c", CHILD, str(ready)]
    )

    def terminate_when_ready():
        deadline = time.time() + 30
        while not ready.exists() and time.time() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    threading.Thread(target=terminate_when_ready, daemon=True).start()
    assert launch.launch([], nproc_per_node=1) == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_childs_output_reaches_streams_without_a_file_descriptor(monkeypatch, capsys):
    script = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(4)"
    monkeypatch.setattr(launch, "torchrun_command", lambda *a, **k: [sys.executable, "-c", script])
    assert launch.launch([], nproc_per_node=1) == 4
    captured = capsys.readouterr()
    assert captured.out == "out\n" and captured.err == "err\n"


# ---------------------------------------------------------------------- real processes
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_from_an_in_process_zoo(zoo, tmp_path):
    """click's CliRunner has no file descriptors: the workers' output is copied through."""
    r = zoo("run", "gru-regressor", "--nproc-per-node", "2", "--epochs", "1", "--json")
    assert r.code == 0, r.stderr
    assert r.json()["path"] == "gru-regressor-sine-windows.safetensors"
    assert (tmp_path / "gru-regressor-sine-windows.safetensors").exists()


@pytest.mark.slow
def test_two_machines_on_localhost_train_together(tmp_path):
    endpoint = f"127.0.0.1:{free_port()}"
    zoo = Path(sys.executable).parent / "zoo"
    nodes = [
        subprocess.Popen(
            [
                *(str(zoo), "run", "gru-regressor", "--epochs", "1", "--out", "M.safetensors"),
                *("--json", "--nproc-per-node", "1", "--nnodes", "2", "--node-rank", str(rank)),
                *("--rdzv-endpoint", endpoint),
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=180) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    docs = [json.loads(out) for out, _ in outputs if out.strip()]
    assert len(docs) == 1 and (tmp_path / "M.safetensors").exists()


@pytest.mark.slow
def test_an_endpoint_held_by_another_program_is_one_error_in_bounded_time(tmp_path):
    with socket.socket() as busy:  # accepts connections, never answers
        busy.bind(("127.0.0.1", 0))
        busy.listen(8)
        endpoint = f"127.0.0.1:{busy.getsockname()[1]}"
        started = time.monotonic()
        r = run_zoo(
            "run",
            "gru-regressor",
            "--nproc-per-node",
            "1",
            "--rdzv-endpoint",
            endpoint,
            env={"ZOO_RDZV_TIMEOUT": "2"},
            cwd=tmp_path,
            timeout=120,
        )
    assert r.code == 1
    line = r.error_line()  # within the timeout the docs give, and saying it
    assert endpoint in line and "did not complete within 2 s" in line
    assert f"waiting for the rendezvous at {endpoint} (gives up after 2 s)" in r.stderr
    assert time.monotonic() - started < 20  # 2 s, and starting Python and torch twice


def test_each_local_process_takes_its_share_of_the_cores_unless_threads_are_asked():
    """A recipe's own thread count is for one process: two processes of the EWT tagger took
    its two threads each, four on two cores, 17x slower than one process."""
    recipe = {"lr": 0.01}
    two = {"LOCAL_WORLD_SIZE": "2"}
    assert launch.fair_threads(recipe, two, cpu_count=2) == {"lr": 0.01, "train.threads": 1}
    assert launch.fair_threads(recipe, two, cpu_count=16)["train.threads"] == 8
    assert launch.fair_threads(recipe, {"LOCAL_WORLD_SIZE": "3"}, cpu_count=2)["train.threads"] == 1
    assert launch.fair_threads(recipe, {}, cpu_count=2) == recipe  # one process: the recipe's
    for asked in ({"threads": "4"}, {"train.threads": 4}):  # asked for: kept, and warned of
        assert launch.fair_threads(asked, two, cpu_count=2) == asked


def test_threads_set_with_set_count_as_asked_for_the_warning():
    import click

    from zoo.cli.train import _threads_asked, run_command

    def asked(**params):
        ctx = click.Context(run_command)
        ctx.params = {"threads": None, "assignments": (), **params}
        return _threads_asked(ctx)

    assert asked() is None
    assert asked(assignments=("threads=2",)) == 2
    assert asked(assignments=("train.threads=3", "lr=0.1")) == 3
    assert asked(threads=1, assignments=("threads=2",)) == 1
    warnings: list[str] = []
    launch.check(2, threads=asked(assignments=("threads=2",)), cpu_count=2, warn=warnings.append)
    launch.check(2, threads=asked(), cpu_count=2, warn=warnings.append)  # 1 each: fits
    assert len(warnings) == 1 and "2 processes x 2 thread(s) on 2 CPU core(s)" in warnings[0]
