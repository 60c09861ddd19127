"""Running the app: in this process, or in N worker processes that share the port.

Workers: each process opens its own listening socket on the port with SO_REUSEPORT, so the
kernel spreads new connections over the processes. (uvicorn's own `--workers` hands one
socket to every process; the first to wake then accepts a whole burst of keep-alive
connections, and one process may serve them all while the others idle.) The parent holds the
port bound (not listening) so nobody else takes it, builds nothing, forwards SIGTERM and
Ctrl-C to the workers, waits for them to finish their requests, and returns. A worker that
dies is reported and ends the server (exit 1), rather than being restarted behind its back.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import threading
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


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


def run_here(app: Any, sock: socket.socket, settings: dict[str, Any]) -> bool:
    """Serve `app` on `sock` in this process until SIGTERM or Ctrl-C and uvicorn's graceful
    shutdown; whether it started. uvicorn raises the signal again once it has shut down: a
    quiet handler makes that end nothing, so the process exits 0 as asked."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, **settings))
    quiet = {sig: signal.signal(sig, _ignore) for sig in STOP_SIGNALS}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in quiet.items():
            signal.signal(sig, handler)
        sock.close()
    return bool(server.started)


def _ignore(signum: int, frame: Any) -> None:
    """A signal uvicorn has already handled (a graceful shutdown)."""


def _worker(spec: dict[str, Any], address: tuple[str, int, int], settings: dict[str, Any]) -> None:
    """One worker process: its own models, app and port-sharing socket."""
    from . import build_backends
    from .app import create_app

    host, port, family = address
    sock = listening_socket(host, port, family, shared=True)
    app = create_app(build_backends(spec), **spec["app"])
    sys.exit(0 if run_here(app, sock, settings) else 1)


def run_workers(
    spec: dict[str, Any], address: tuple[str, int, int], settings: dict[str, Any], count: int
) -> int:
    """Start `count` workers and wait: 0 after a signal and their graceful shutdown, 1 when a
    worker ended by itself."""
    context = multiprocessing.get_context("spawn")  # no inherited threads or torch state
    processes = [
        context.Process(target=_worker, args=(spec, address, settings), name=f"zoo-worker-{i}")
        for i in range(count)
    ]
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda s, f: stop.set()) for sig in STOP_SIGNALS}
    try:
        for process in processes:
            process.start()
        while not stop.wait(0.25):
            if any(not p.is_alive() for p in processes):
                break
        failed = not stop.is_set()
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        for process in processes:
            process.join(settings["timeout_graceful_shutdown"] + 10)
            if process.is_alive():
                process.kill()
                process.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if failed else 0
