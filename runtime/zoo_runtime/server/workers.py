"""Running the app: in this process, or in N worker processes that share the port.

Workers: each process opens its own listening socket on the port with SO_REUSEPORT, so the
kernel spreads new connections over the processes. (uvicorn's own `--workers` hands one
socket to every process; the first to wake then accepts a whole burst of keep-alive
connections, and one process may serve them all while the others idle.) The parent holds the
port bound (not listening) so nobody else takes it, and builds nothing: it imports neither
torch nor a model, so a deployment's memory is the workers' alone.

At start no worker listens before all have loaded and warmed their models: each says so to
the parent and waits for its go. Otherwise the first worker up takes every connection a
client opens meanwhile, and keep-alive connections stay where they landed (a load test's
64 clients on one of two workers, half the throughput, for the whole run). A worker started
later (a replacement) listens as soon as it is warm.

The parent supervises. Each worker tells it, over a pipe of its own, once it is ready (what
it serves) or why its models would not load; a load error ends the server with that error,
as the command would have said it in one process. A worker that dies later (SIGKILL, out of
memory, a crash) is logged in one line and replaced on the same port while the others go on
answering. Workers that keep dying (DEATHS within WINDOW seconds), or one not ready within
the start timeout, end the server with one error line: a restart would not mend them.
SIGTERM or Ctrl-C is forwarded to every live worker, which finishes its requests in flight.

Metrics: the parent makes a directory for prometheus_client's multiprocess mode and names it
to the workers in their environment, so that a scrape of any worker sums them all
(metrics.py); a dead worker's live gauges are dropped, its counts kept; the directory goes
when the server stops. A worker whose parent was killed outright stops by itself, and the
last such worker to stop removes the directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import os
import pickle
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's multiprocess mode
WORKERS_LOCK = ".workers"  # in the metrics directory: shared-locked by each live worker
DEATHS = 5  # this many worker deaths ...
WINDOW = 60.0  # ... within this many seconds is a crash loop: stop
POLL = 0.25  # seconds between the parent's looks at its workers


def listening_socket(host: str, port: int, family: int, shared: bool) -> socket.socket:
    """A TCP socket bound to (host, port); `shared`: with SO_REUSEPORT, for the workers."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def run_here(
    app: Any,
    sock: socket.socket,
    settings: dict[str, Any],
    ready: Callable[[], None] | None = None,
    gate: Callable[[Callable[[], bool]], None] | None = None,
) -> bool:
    """Serve `app` on `sock` in this process until SIGTERM or Ctrl-C and uvicorn's graceful
    shutdown; whether it started. `ready` is called once the app has loaded, warmed its models
    and listens. `gate`, when given, runs (in a thread) between the warm-up and listening, and
    returns when the process may listen or, asked with a function saying so, should stop. uvicorn raises the signal again once it has shut down: a quiet handler makes
    that end nothing, so the process exits 0 as asked."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            if gate is not None:
                _gate_after_warming(self, gate)
            await super().startup(sockets=sockets)
            if self.started:
                _spare_from_collector()
            if self.started and ready is not None:
                ready()

    server = Server(uvicorn.Config(app, **settings))
    quiet = {sig: signal.signal(sig, _ignore) for sig in STOP_SIGNALS}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in quiet.items():
            signal.signal(sig, handler)
        sock.close()
    return bool(server.started)


def _gate_after_warming(server: Any, gate: Callable[[Callable[[], bool]], None]) -> None:
    """Run `gate` once the app's lifespan has warmed its models, before uvicorn listens:
    uvicorn's startup runs the lifespan and then opens the sockets, with no step between, so
    the lifespan's own startup is wrapped."""
    warm = server.lifespan.startup

    async def warm_then_wait() -> None:
        await warm()
        if not server.lifespan.should_exit:
            stopping = lambda: bool(server.should_exit)  # noqa: E731 (a SIGTERM meanwhile)
            await asyncio.get_running_loop().run_in_executor(None, gate, stopping)

    server.lifespan.startup = warm_then_wait


def _spare_from_collector() -> None:
    """Put everything alive once the models are loaded and warmed (torch's or onnxruntime's
    modules, the vocabularies, the app) out of the garbage collector's reach (`gc.freeze`).
    Each full collection otherwise walks all of it: 50-130 ms every second or two under load,
    during which the process answers nothing, which made a served tagger's p99 at 64 clients
    2.5x its median. What requests create is collected as before."""
    gc.collect()  # what is garbage now is freed, not kept for good
    gc.freeze()


def _ignore(signum: int, frame: Any) -> None:
    """A signal uvicorn has already handled (a graceful shutdown)."""


# ------------------------------------------------------------------------ in a worker
def _worker(
    spec: dict[str, Any],
    address: tuple[str, int, int],
    settings: dict[str, Any],
    pipe: Connection,
    parent: int,
    go: Any,
) -> None:
    """One worker process: its own models, app and port-sharing socket. It sends its parent
    ("warm", None) once its models are loaded and warmed, then listens when the parent sets
    `go` (a multiprocessing Event: every first worker warm), and sends ("ready", names); or
    ("failed", error) when its models will not load."""
    from . import build_backends
    from .app import create_app

    _stop_with_parent(parent)
    metrics = _share_metrics_directory()
    host, port, family = address
    try:
        sock = listening_socket(host, port, family, shared=True)
        backends = build_backends(spec)
    except Exception as e:
        pipe.send(("failed", _portable(e)))
        sys.exit(1)
    app = create_app(backends, **spec["app"])
    names = [b.name for b in backends]

    def gate(stopping: Callable[[], bool]) -> None:
        pipe.send(("warm", None))
        while not go.wait(POLL) and not stopping():
            pass

    announce = lambda: pipe.send(("ready", names))  # noqa: E731
    started = run_here(app, sock, settings, announce, gate)
    _last_out(metrics, parent)
    sys.exit(0 if started else 1)


def _share_metrics_directory() -> int | None:
    """A shared lock on the metrics directory (its WORKERS_LOCK file), held while this worker
    lives: the kernel drops it when the process ends, however it ends. None where there is
    no directory or no flock (not Linux)."""
    directory = os.environ.get(METRICS_ENV)
    if not directory:
        return None
    try:
        import fcntl

        fd = os.open(os.path.join(directory, WORKERS_LOCK), os.O_RDONLY | os.O_CREAT, 0o600)
    except (ImportError, OSError):
        return None
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def _last_out(lock: int | None, parent: int) -> None:
    """The parent removes the metrics directory when the server stops, unless it was killed
    outright (SIGKILL): then the last orphaned worker to stop removes it, the one that finds
    no other worker holding the lock."""
    if lock is None or os.getppid() == parent:
        return
    import fcntl

    fcntl.flock(lock, fcntl.LOCK_UN)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # another worker still runs: the last one out removes it
    shutil.rmtree(str(os.environ.get(METRICS_ENV)), ignore_errors=True)


def _stop_with_parent(parent: int) -> None:
    """A worker whose parent was killed outright (no SIGTERM forwarded) would serve on with
    nobody to restart or stop it: it sends itself SIGTERM (a graceful stop) once orphaned."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="zoo-parent-watch", daemon=True).start()


def _portable(error: Exception) -> tuple[bytes | None, str, bool]:
    """A worker's load error for its parent: pickled where it can be, so that the parent
    raises that very error (its class, message and exit code, as a command prints it), with
    its one line besides, and whether it had a cause (zoo's message says so)."""
    try:
        data: bytes | None = pickle.dumps(error)
    except Exception:
        data = None
    return data, f"{type(error).__name__}: {error}", error.__cause__ is not None


def _restored(payload: tuple[bytes | None, str, bool]) -> Exception:
    """The error a worker sent (_portable), or a ServeError of its line where it will not
    unpickle here."""
    from . import ServeError

    data, line, caused = payload
    error = None
    with contextlib.suppress(Exception):
        error = pickle.loads(data) if data is not None else None
    if not isinstance(error, Exception):
        return ServeError(f"a worker could not load the models: {line}")
    if caused:
        error.__cause__ = RuntimeError("raised in a worker process")
    return error


# ------------------------------------------------------------------------ in the parent
@dataclass
class Worker:
    """One worker process as its parent sees it."""

    number: int  # 1..N, kept by its replacements
    process: Any  # multiprocessing's SpawnProcess
    pipe: Connection
    since: float  # time.monotonic() at its start
    warm: bool = False  # models loaded and warmed (it may not listen yet)
    ready: bool = False  # listening
    open: bool = True  # its pipe has not ended


def _how(exitcode: int | None) -> str:
    """How a process ended, in words: `was killed by SIGKILL`, `exited with code 1`."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


class Supervisor:
    """Starts the workers, reads their news, replaces the dead and gives up on a crash loop
    or a worker never ready (module docstring)."""

    def __init__(
        self,
        args: tuple[dict[str, Any], tuple[str, int, int], dict[str, Any]],
        metrics: str,
        start_timeout: float,
        announce: Callable[[list[str]], None],
    ):
        self.context = multiprocessing.get_context("spawn")  # no inherited threads or torch
        self.args, self.metrics, self.start_timeout = args, metrics, start_timeout
        self.announce: Callable[[list[str]], None] | None = announce  # once, at the first ready
        self.workers: list[Worker] = []
        self.deaths: deque[float] = deque()
        # set once every worker is warm: none listens before, so that no early client's
        # keep-alive connections all land on the first worker up (a whole benchmark's did)
        self.go = self.context.Event()

    def start(self, number: int) -> Worker:
        """A new worker. It starts with Ctrl-C ignored (a new interpreter keeps an ignored
        SIGINT so): Ctrl-C in a terminal reaches every process of the group, and a worker
        still importing or loading would die of it with a traceback; its parent sends it
        SIGTERM instead. Once serving, uvicorn handles both signals."""
        reader, writer = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=_worker,
            args=(*self.args, writer, os.getpid(), self.go),
            name=f"zoo-worker-{number}",
        )
        handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            process.start()
        finally:
            signal.signal(signal.SIGINT, handler)
        writer.close()  # the worker's end: the pipe ends when the worker does
        return Worker(number, process, reader, time.monotonic())

    def watch(self, stop: threading.Event) -> None:
        """Until `stop` is set: read each worker's news, replace the dead. Raises the error
        that ends the server."""
        from . import ServeError

        while not stop.is_set():
            pipes = [w.pipe for w in self.workers if w.open]
            wait(pipes + [w.process.sentinel for w in self.workers], POLL)
            for i, worker in enumerate(self.workers):
                self._read(worker)
                if stop.is_set():
                    return
                if not worker.process.is_alive():
                    self.workers[i] = self._replace(worker)
                elif not worker.warm and time.monotonic() - worker.since > self.start_timeout:
                    raise ServeError(
                        f"worker {worker.number} (pid {worker.process.pid}) was not ready "
                        f"within {self.start_timeout:g} s of its start (loading and warming "
                        "its models); stopping"
                    )
            if not self.go.is_set() and all(w.warm for w in self.workers):
                self.go.set()

    def _read(self, worker: Worker) -> None:
        while worker.open and worker.pipe.poll():
            try:
                kind, payload = worker.pipe.recv()
            except (EOFError, OSError):
                worker.open = False
                return
            if kind == "failed":
                raise _restored(payload)
            if kind == "warm":
                worker.warm = True
                continue
            worker.warm = worker.ready = True
            if self.announce is not None:
                self.announce(payload)
                self.announce = None

    def _replace(self, dead: Worker) -> Worker:
        """One line for the death; the dead worker's live gauges dropped; a new worker in its
        place, unless workers keep dying (then a ServeError)."""
        from prometheus_client import multiprocess

        from . import ServeError

        how, now = _how(dead.process.exitcode), time.monotonic()
        dead.pipe.close()
        multiprocess.mark_process_dead(dead.process.pid, self.metrics)
        self.deaths.append(now)
        while now - self.deaths[0] > WINDOW:
            self.deaths.popleft()
        if len(self.deaths) >= DEATHS:
            raise ServeError(
                f"workers keep dying: {len(self.deaths)} deaths within {WINDOW:g} s, the last "
                f"worker {dead.number} (pid {dead.process.pid}) {how}; stopping"
            )
        print(
            f"worker {dead.number} (pid {dead.process.pid}) {how}; starting another",
            file=sys.stderr,
            flush=True,
        )
        return self.start(dead.number)

    def stop_all(self, grace: float) -> None:
        """SIGTERM to every live worker (each finishes its requests in flight), then wait for
        them, killing one that outlives `grace` seconds and ten more."""
        for worker in self.workers:
            if worker.process.is_alive() and worker.process.pid is not None:
                os.kill(worker.process.pid, signal.SIGTERM)
        for worker in self.workers:
            worker.process.join(grace + 10)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.pipe.close()


@contextlib.contextmanager
def shared_metrics() -> Iterator[str]:
    """A fresh directory for prometheus_client's multiprocess mode, named in the environment
    the workers inherit, and removed with what they wrote once they have all ended."""
    directory = tempfile.mkdtemp(prefix="zoo-serve-metrics-")
    before = os.environ.get(METRICS_ENV)
    os.environ[METRICS_ENV] = directory
    try:
        yield directory
    finally:
        if before is None:
            os.environ.pop(METRICS_ENV, None)
        else:
            os.environ[METRICS_ENV] = before
        shutil.rmtree(directory, ignore_errors=True)


def run_workers(
    spec: dict[str, Any],
    address: tuple[str, int, int],
    settings: dict[str, Any],
    count: int,
    *,
    start_timeout: float,
    announce: Callable[[list[str]], None],
) -> None:
    """Serve with `count` worker processes until SIGTERM or Ctrl-C, then let every live one
    finish its requests, and return. `announce` gets the served names once a worker is ready.
    Raises a worker's own error when its models will not load, and a ServeError when workers
    keep dying or one is never ready (after stopping the others)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda s, f: stop.set()) for sig in STOP_SIGNALS}
    try:
        with shared_metrics() as directory:
            supervisor = Supervisor((spec, address, settings), directory, start_timeout, announce)
            try:
                for number in range(1, count + 1):
                    supervisor.workers.append(supervisor.start(number))
                supervisor.watch(stop)
            finally:
                supervisor.stop_all(settings["timeout_graceful_shutdown"])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
