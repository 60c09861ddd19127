"""Several server processes (`--workers N`, zoo_runtime/server/workers.py): a worker that dies
is replaced on the port while the others answer; workers that keep dying, or one never ready,
end the server with one error line; SIGTERM drains every live worker, mid-restart too; a scrape
of /metrics counts every worker's requests; the parent loads no model (docs/serving.md)."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import Server, env, free_port, request, runtime_serve, zoo_serve

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


# ----------------------------------------------------------------- helpers
def spec_workers(spec: dict[str, Any], workers: int = 2, **settings: Any) -> list[str]:
    """A server of `spec` in `workers` processes (zoo_runtime.server.serve with `settings`),
    a ServeError said as the commands say it; takes --port like them."""
    code = (
        "import json, sys\n"
        "from zoo_runtime.server import ServeError, serve\n"
        "try:\n"
        f"    serve(json.loads(sys.argv[1]), port=int(sys.argv[3]), workers={workers},\n"
        f"          graceful_timeout=5, **json.loads({json.dumps(settings)!r}))\n"
        "except ServeError as e:\n"
        "    print(f'Error: {e}', file=sys.stderr)\n"
        "    sys.exit(1)\n"
    )
    return [sys.executable, "-c", code, json.dumps(spec)]


def dying_spec(tmp_path: Path) -> dict[str, Any]:
    """Fake backends whose workers die (or load slowly) once a file says so (dying.py)."""
    die, slow = str(tmp_path / "die"), str(tmp_path / "slow")
    return {"loader": "tests.runtime.dying:backends", "args": {"die": die, "slow": slow}, "app": {}}


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command's name: [state, ppid, ...]."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    try:
        return _stat(pid)[0] not in ("Z", "X")
    except OSError:
        return False


def reaped(pid: int) -> bool:
    """A killed worker gone for good: its parent has noticed and reaped it (a death noticed
    sooner may find the kernel still dropping the dead worker's connections)."""
    return not Path(f"/proc/{pid}").exists()


def workers_of(parent: int) -> set[int]:
    """The live worker processes (multiprocessing's spawned children) of `parent`."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid, command = int(_stat(int(entry.name))[1]), (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"spawn_main" in command and alive(int(entry.name)):
            found.add(int(entry.name))
    return found


def until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """condition()'s first true value, polled for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def answering(server: Server, count: int, timeout: float = 60) -> set[int]:
    """The pids of the workers answering /healthz over fresh connections (the kernel spreads
    them), once `count` have answered. Bounded by time, not tries: a replaced worker may take
    seconds to load on a loaded machine."""
    pids: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids.add(request(server.url + "/healthz", timeout=5)[1]["pid"])
        if len(pids) >= count:
            return pids
        time.sleep(0.01)
    raise AssertionError(f"only {len(pids)} worker(s) answered within {timeout} s: {pids}")


def totals(server: Server, scrapes: int = 8) -> set[float]:
    """zoo_requests_total, summed over its labels, in each of `scrapes` scrapes."""
    seen = set()
    for _ in range(scrapes):
        text = request(server.url + "/metrics", timeout=5)[1]
        families = text_string_to_metric_families(text)
        seen.add(
            sum(s.value for f in families for s in f.samples if s.name == "zoo_requests_total")
        )
    return seen


def finished(server: Server, timeout: float = 60) -> tuple[int, str]:
    """(exit code, stderr) of a server ending by itself, within `timeout` seconds."""
    assert server.process is not None
    try:
        _, err = server.process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.process.kill()
        _, err = server.process.communicate()
        raise AssertionError(f"the server did not end within {timeout} s: {err[-2000:]}") from None
    return server.process.returncode, err


# ----------------------------------------------------------------- restarts
@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_every_scrape_counts_all_requests(
    kinds, tmp_path, monkeypatch
):
    """zoo-runtime serve, 2 workers: requests over fresh connections reach both, and every
    scrape counts them all; SIGKILL one: the other answers every request meanwhile, a new
    worker comes up on the port, the dead one's counts stay in the totals; SIGTERM: exit 0,
    one log line for the death, the metrics directory gone."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the parent makes its metrics directory
    server = Server(runtime_serve(kinds["tagger"][1], "--workers", "2")).start()
    try:
        first = answering(server, 2)
        assert len(list(tmp_path.glob("zoo-serve-metrics-*"))) == 1
        sent = 20
        assert all(server.predict("tagger", ["The dog"])[0] == 200 for _ in range(sent))
        assert totals(server) == {sent}
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        until(lambda: reaped(victim), 10, "the killed worker is reaped")
        seen: set[int] = set()
        deadline = time.monotonic() + 60
        while not seen - first and time.monotonic() < deadline:
            status, body = server.predict("tagger", ["The dog"])
            sent += 1
            assert status == 200, body
            seen.add(request(server.url + "/healthz", timeout=5)[1]["pid"])
        assert seen - first, "no new worker answered within 60 s"
        assert victim not in seen
        assert totals(server) == {sent}
    finally:
        code, err = server.stop()
    assert code == 0, err
    deaths = [line for line in err.splitlines() if line.startswith("worker ")]
    assert len(deaths) == 1 and re.fullmatch(
        rf"worker [12] \(pid {victim}\) was killed by SIGKILL; starting another", deaths[0]
    ), err
    assert "Traceback" not in err
    assert not list(tmp_path.glob("zoo-serve-metrics-*"))


def test_no_worker_listens_before_every_worker_is_warm(tmp_path):
    """Two workers, the second 3 s slower to load: nothing answers before it has loaded (the
    first one up would take every early keep-alive connection), and then both do, over
    fresh connections, within a few tries."""
    loaded = tmp_path / "loaded"
    args = {"first": str(tmp_path / "first"), "loaded": str(loaded)}
    spec = {"loader": "tests.runtime.dying:staggered", "args": args, "app": {}}
    with Server(spec_workers(spec)) as server:
        answered = time.time()
        assert loaded.exists() and float(loaded.read_text()) <= answered
        assert len(answering(server, 2, timeout=10)) == 2
        code, err = server.stop()
    assert code == 0 and "Traceback" not in err, err


@pytest.mark.slow
def test_workers_that_keep_dying_end_the_server_with_one_error_line(tmp_path):
    """A worker killed, and its replacements killed while loading: the other worker answers
    meanwhile; the fifth death ends the server: one Error line, exit 1, no traceback."""
    with Server(spec_workers(dying_spec(tmp_path))) as server:
        victim = min(answering(server, 2))  # both listen (ready is when the first one is)
        (tmp_path / "die").touch()
        os.kill(victim, signal.SIGKILL)
        until(lambda: reaped(victim), 10, "the killed worker is reaped")
        answers = [server.predict("fake", ["x"]) for _ in range(5)]
        code, err = finished(server)
    assert all(status == 200 for status, _ in answers), answers
    lines = err.strip().splitlines()
    assert re.fullmatch(
        r"Error: workers keep dying: 5 deaths within 60 s, the last worker [12] \(pid \d+\) "
        r"was killed by SIGKILL; stopping",
        lines[-1],
    ), err
    assert code == 1 and sum(line.startswith("Error:") for line in lines) == 1
    assert sum(line.endswith("; starting another") for line in lines) == 4
    assert "Traceback" not in err


@pytest.mark.slow
def test_a_worker_never_ready_ends_the_server_with_one_error_line():
    spec = {"loader": "tests.runtime.dying:stuck", "args": {}, "app": {}}
    command = [*spec_workers(spec, start_timeout=1.5), "--port", str(free_port())]
    started = time.monotonic()
    p = subprocess.run(command, capture_output=True, text=True, env=env(), timeout=60)
    assert p.returncode == 1, p.stderr
    assert re.fullmatch(
        r"Error: worker [12] \(pid \d+\) was not ready within 1.5 s of its start "
        r"\(loading and warming its models\); stopping",
        p.stderr.strip().splitlines()[-1],
    ), p.stderr
    assert "Traceback" not in p.stderr and time.monotonic() - started < 30


@pytest.mark.slow
def test_sigterm_during_a_restart_stops_every_worker_and_exits_0(tmp_path):
    with Server(spec_workers(dying_spec(tmp_path))) as server:
        parent = server.process.pid
        old = answering(server, 2)
        (tmp_path / "slow").touch()  # the replacement takes a minute to load
        os.kill(min(old), signal.SIGKILL)
        replacement = until(lambda: workers_of(parent) - old, 20, "a replacement starts")
        assert server.predict("fake", ["x"])[0] == 200  # the other worker answers
        code, err = server.stop(timeout=30)
    assert code == 0, err
    assert "Traceback" not in err
    for pid in old | replacement:
        until(lambda pid=pid: not alive(pid), 10, f"worker {pid} ends")


@pytest.mark.slow
def test_ctrl_c_while_the_workers_load_stops_them_quietly(tmp_path):
    """Ctrl-C reaches the whole process group: workers still loading leave it to their
    parent (no KeyboardInterrupt traceback), which stops them; exit 0."""
    spec = dying_spec(tmp_path)
    (tmp_path / "slow").touch()  # loading takes a minute
    command = [*spec_workers(spec), "--port", str(free_port())]
    p = subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env=env(), start_new_session=True
    )
    try:
        until(lambda: len(workers_of(p.pid)) == 2, 20, "two workers start")
        time.sleep(0.5)  # importing
        os.killpg(p.pid, signal.SIGINT)
        _, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
    assert p.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


@pytest.mark.slow
def test_workers_whose_parent_is_killed_stop_by_themselves(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    server = Server(spec_workers(dying_spec(tmp_path))).start()
    workers = until(lambda: workers_of(server.process.pid), 10, "the workers")
    assert len(list(tmp_path.glob("zoo-serve-metrics-*"))) == 1
    server.process.kill()
    server.process.communicate(timeout=10)
    for pid in workers:
        until(lambda pid=pid: not alive(pid), 20, f"orphaned worker {pid} ends")
    # the parent could not remove its metrics directory: the last worker out did
    until(lambda: not list(tmp_path.glob("zoo-serve-metrics-*")), 10, "the directory removed")


# ----------------------------------------------------------------- loading in the workers
@pytest.mark.slow
def test_the_parent_loads_no_model(kinds):
    """With several workers the parent maps neither torch nor onnxruntime; a worker does."""
    model, onnx = kinds["tagger"]
    for command, library in ((zoo_serve, "libtorch"), (runtime_serve, "onnxruntime")):
        with Server(command(model if command is zoo_serve else onnx, "--workers", "2")) as s:
            worker = request(s.url + "/healthz")[1]["pid"]
            assert library in Path(f"/proc/{worker}/maps").read_text()
            assert library not in Path(f"/proc/{s.process.pid}/maps").read_text()
            assert s.predict("tagger", ["The dog"])[0] == 200


READY_REPORT = """
import gc, os, signal, socket
from fastapi import FastAPI
from zoo_runtime.server.workers import listening_socket, run_here
app = FastAPI()
def ready():
    alive = {id(o) for o in gc.get_objects()}  # the collector's generations, not the frozen
    print(gc.get_freeze_count(), id(app) in alive, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
sock = listening_socket("127.0.0.1", 0, socket.AF_INET, shared=False)
print("started", run_here(app, sock, {"log_level": "warning"}, ready), flush=True)
"""


def test_what_a_server_loaded_is_out_of_the_collectors_reach_once_ready():
    """A full garbage collection walking torch, the models and the app stalled a worker for
    50-130 ms every second or two under load: by the time a server says it is ready, what it
    loaded is frozen (gc.freeze), the app included; it then stops on SIGTERM as ever."""
    done = subprocess.run(
        [sys.executable, "-c", READY_REPORT], capture_output=True, text=True, timeout=60, env=env()
    )
    assert done.returncode == 0, done.stderr
    frozen, app_collectable, started = done.stdout.split()[:2] + done.stdout.split()[-1:]
    assert int(frozen) > 10_000 and app_collectable == "False" and started == "True"


@pytest.mark.slow
def test_a_file_the_workers_cannot_load_is_the_commands_own_line(kinds, tmp_path):
    """The worker's error reaches the parent as itself: zoo predict's line and exit code for
    zoo serve (a usage error exits 2), zoo-runtime's for zoo-runtime serve."""

    def run(command: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, capture_output=True, text=True, env=env(), timeout=120)

    missing = tmp_path / "missing.onnx"
    served = run(runtime_serve(missing, "--workers", "2", "--port", "0"))
    predicted = run([*runtime_serve(missing)[:3], str(missing), "x"])
    assert served.returncode == predicted.returncode == 1
    assert served.stderr == predicted.stderr and served.stderr.startswith("Error: ")
    hostile = tmp_path / "hostile.safetensors"
    hostile.write_bytes(b"\xff" * 8 + b"{not json")
    zoo = [sys.executable, "-m", "zoo"]
    served = run(zoo_serve(hostile, "--workers", "2", "--port", "0"))
    predicted = run([*zoo, "predict", str(hostile), "x"])
    assert (served.returncode, served.stderr) == (predicted.returncode, predicted.stderr)
    assert served.returncode == 1 and served.stderr.startswith("Error: ")
    usage = run(zoo_serve(kinds["tagger"][0], "--device", "banana", "--workers", "2"))
    assert usage.returncode == 2, usage.stderr
    assert usage.stderr == "Error: --device 'banana': expected cpu, cuda, cuda:N or auto\n"


# ----------------------------------------------------------------- the pieces
def test_how_a_worker_ended_is_said_in_words():
    from zoo_runtime.server.workers import _how

    assert _how(-signal.SIGKILL) == "was killed by SIGKILL"
    assert _how(1) == "exited with code 1"
    assert _how(-200) == "was killed by signal 200"


def test_a_workers_error_reaches_the_parent_as_itself():
    from zoo_runtime.onnxfile import UsageError
    from zoo_runtime.server import ServeError
    from zoo_runtime.server.workers import _portable, _restored

    try:
        try:
            raise KeyError("x")
        except KeyError as cause:
            raise UsageError("--device banana: not a device") from cause
    except UsageError as e:
        error = _restored(_portable(e))
    assert type(error) is UsageError and str(error) == "--device banana: not a device"
    assert error.exit_code == 2 and error.__cause__ is not None

    class Local(Exception):  # cannot be pickled: the parent gets its line
        pass

    error = _restored(_portable(Local("no such file")))
    assert isinstance(error, ServeError)
    assert str(error) == "a worker could not load the models: Local: no such file"
    assert isinstance(_restored((pickle.dumps("not an error"), "x: y", False)), ServeError)
