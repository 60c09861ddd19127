"""The HTTP server of `zoo-runtime serve` and `zoo serve` (docs/serving.md): FastAPI on
uvicorn, one dynamic batcher per model, Prometheus metrics, a page to try each model.

It imports neither zoo nor torch: it serves backends (`backend.Backend`). This package supplies
the ONNX one; zoo supplies its torch backend (zoo/features/serve.py) and names it in the spec
below, so that one server serves both kinds of file.

A spec says how to build the backends, so that each worker process of `--workers N` can build
its own: {"loader": "module:function", "args": {...}, "app": {create_app's settings}}; the
loader is called as function(**args) and returns the backends.
"""

from __future__ import annotations

import errno
import importlib
import os
import socket
import sys
from typing import Any

from ..onnxfile import RuntimeZooError
from .backend import Backend, InputError, ModelFailure, OnnxBackend, onnx_backends

__all__ = [
    "Backend",
    "InputError",
    "ModelFailure",
    "OnnxBackend",
    "ServeError",
    "build_backends",
    "needs",
    "onnx_backends",
    "serve",
]
ONNX_LOADER = "zoo_runtime.server.backend:onnx_backends"
# Defaults of both commands (zoo serve, zoo-runtime serve), importable without FastAPI.
MAX_BATCH = 64  # inputs in one predict call
MAX_WAIT_MS = 5.0  # the longest a request waits for others to join it
GROUP = 12  # inputs predicted at once inside a batch, in order of length (measured best)
MAX_BODY = 16 * 1024 * 1024  # bytes of one request body
BODY_TIMEOUT = 30.0  # seconds to receive one request body
GRACEFUL_TIMEOUT = 30.0  # seconds to finish the requests in flight after SIGTERM
START_TIMEOUT = 120.0  # seconds a worker may take to load and warm its models
KEEP_ALIVE = 5.0  # seconds an idle connection is kept open
MAX_WORKERS = 8  # the most processes started by default (each holds the models)
REQUIRED = ("fastapi", "uvicorn", "prometheus_client", "orjson")


def default_workers() -> int:
    """One process per core this process may use (each runs its model at one thread), at
    most MAX_WORKERS: one process is held to one core by Python's lock."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


class ServeError(RuntimeZooError):
    """The server cannot start (a port in use, a bad setting): one line, exit 1."""


def needs(command: str, install: str) -> None:
    """One ServeError line naming what to install when a package of the server is missing."""
    for module in REQUIRED:
        try:
            importlib.import_module(module)
        except ImportError:
            raise ServeError(f"{command} needs {module}: {install}") from None


def build_backends(spec: dict[str, Any]) -> list[Backend]:
    """The backends a spec describes (module docstring)."""
    module, _, name = spec["loader"].partition(":")
    return list(getattr(importlib.import_module(module), name)(**spec["args"]))


def bind(host: str, port: int, shared: bool = False) -> socket.socket:
    """The socket bound here, so that a port in use is one line before any worker starts
    (uvicorn would log it and exit); `shared`: the workers bind it too (workers.py)."""
    from .workers import listening_socket

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as e:
        raise ServeError(f"--host {host}: cannot resolve it ({e.strerror})") from None
    try:
        return listening_socket(host, port, family, shared)
    except OSError as e:
        why = "the port is in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
        raise ServeError(f"--port {port}: cannot listen on {host}:{port}: {why}") from None


def serve(
    spec: dict[str, Any],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    graceful_timeout: float = GRACEFUL_TIMEOUT,
    keep_alive: float = KEEP_ALIVE,
    access_log: bool = False,
    log_level: str = "info",
    backends: list[Backend] | None = None,
    start_timeout: float = START_TIMEOUT,
) -> None:
    """Serve until SIGTERM or Ctrl-C, then stop accepting, finish the requests in flight
    (at most `graceful_timeout` seconds) and return. One process: `backends` if given (the
    spec's, already built), else built here. Several: each worker builds its own, and this
    process only supervises (workers.py; a worker not ready within `start_timeout` seconds
    ends the server). Once serving, one line on stderr says what is served where (port 0
    picks a free port)."""
    from . import workers as processes

    sock = bind(host, port, shared=workers > 1)
    port = sock.getsockname()[1]

    def announce(names: list[str]) -> None:
        print(
            f"serving {', '.join(names) or 'no models'} on http://{host}:{port} "
            f"({workers} process(es); API at /docs)",
            file=sys.stderr,
            flush=True,
        )

    settings: dict[str, Any] = {
        "lifespan": "on",
        "access_log": access_log,
        "log_level": log_level,
        "timeout_keep_alive": int(keep_alive),
        "timeout_graceful_shutdown": int(graceful_timeout),
        "server_header": False,
    }
    if workers > 1:
        try:  # the port stays bound (not listening) in this process while the workers serve
            processes.run_workers(
                spec, (host, port, sock.family), settings, workers,
                start_timeout=start_timeout, announce=announce,
            )  # fmt: skip
        finally:
            sock.close()
        return
    _serve_here(spec, sock, settings, backends, announce)


def _serve_here(
    spec: dict[str, Any],
    sock: socket.socket,
    settings: dict[str, Any],
    backends: list[Backend] | None,
    announce: Any,
) -> None:
    """One process: the app on `sock`, announced once it is ready."""
    from .app import create_app
    from .workers import run_here

    try:
        if backends is None:
            backends = build_backends(spec)
        app = create_app(backends, **spec["app"])
    except BaseException:
        sock.close()
        raise
    names = [b.name for b in backends]
    if not run_here(app, sock, settings, lambda: announce(names)):
        raise ServeError("the server did not start (its log above says why)")
