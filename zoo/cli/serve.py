"""`zoo serve FILE [FILE ...]`: serve saved models over HTTP (docs/serving.md).

The server is the torch-free runtime's (zoo_runtime.server: FastAPI on uvicorn, dynamic
batching, Prometheus metrics, a page to try each model); zoo/features/serve.py gives it the
torch backend for `.safetensors` files, and `.onnx` files go through the runtime's own. Nothing
heavy is imported until the command runs, so `zoo --help` stays quick; without the server's
packages one line says what to install.
"""

from __future__ import annotations

from typing import Any

import click

from zoo.cli.base import option
from zoo.core.errors import ZooError

INSTALL = "pip install 'rnn-zoo[serve]' './runtime[serve]' (the runtime's server, from a clone)"
# The torch backend, named to each server process; this one (the supervisor of several)
# imports neither it nor torch.
LOADER = "zoo.features.serve:backends"

# The server's defaults (zoo_runtime.server), said in the help without importing it;
# tests/core/test_serve.py holds them equal.
DEFAULTS = {
    "max_batch": 64,
    "max_wait_ms": 5.0,
    "group": 12,
    "max_body": 16 * 1024 * 1024,
    "max_workers": 8,
}


@click.command("serve")
@click.argument("files", metavar="FILE [FILE ...]", nargs=-1, required=True, type=click.Path())
@option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port.")
@option(
    "--max-batch",
    type=click.IntRange(min=1),
    help=f"Most inputs in one predict call (default {DEFAULTS['max_batch']}).",
)
@option(
    "--max-wait-ms",
    type=click.FloatRange(min=0),
    help="Longest a request waits for others to join its batch, under load "
    f"(default {DEFAULTS['max_wait_ms']:g}); a lone request never waits.",
)
@option(
    "--group",
    type=click.IntRange(min=1),
    help=f"Inputs run at once inside a batch, in order of length (default {DEFAULTS['group']}).",
)
@option(
    "--workers",
    type=click.IntRange(min=1),
    help="Server processes, each with its own copy of the models "
    f"(default: one per core, at most {DEFAULTS['max_workers']}).",
)
@option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="torch (and onnxruntime) threads in each process.",
)
@option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@option(
    "--max-body",
    type=click.IntRange(min=1),
    help=f"Bytes of one request body (default {DEFAULTS['max_body']:,}); larger: 413.",
)
@option(
    "--graceful-timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds to finish the requests in flight after SIGTERM.",
)
@option("--access-log", is_flag=True, help="Log every request (off: it costs time).")
def serve_command(
    files: tuple[str, ...],
    host: str,
    port: int,
    max_batch: int | None,
    max_wait_ms: float | None,
    group: int | None,
    workers: int | None,
    threads: int,
    device: str,
    max_body: int | None,
    graceful_timeout: float,
    access_log: bool,
) -> None:
    """Serve saved model FILEs (.safetensors through torch, .onnx through the runtime) over
    HTTP: POST /v1/models/NAME/predict answers as `zoo predict --json`; GET /v1/models,
    /healthz, /readyz, /metrics, /docs, and a page to try each model at /. NAME is the
    file's name without its extension. Needs pip install 'rnn-zoo[serve]' './runtime[serve]'."""
    server = needs_server()
    spec = {
        "loader": LOADER,
        "args": {
            "files": list(files),
            "threads": threads,
            "device": device,
            "group": group or server.GROUP,
        },
        "app": {
            "max_batch": max_batch or server.MAX_BATCH,
            "max_wait_ms": server.MAX_WAIT_MS if max_wait_ms is None else max_wait_ms,
            "max_body": max_body or server.MAX_BODY,
        },
    }
    workers = workers or server.default_workers()
    loaded = None
    if workers == 1:  # a bad file is one line before anything listens (several: each worker's)
        from zoo.features.serve import backends

        loaded = backends(**spec["args"])
    try:
        server.serve(
            spec,
            host=host,
            port=port,
            workers=workers,
            graceful_timeout=graceful_timeout,
            access_log=access_log,
            backends=loaded,
        )
    except server.ServeError as e:
        raise ZooError(str(e)) from None


def needs_server() -> Any:
    """The runtime's server package, or one ZooError line saying what to install."""
    try:
        from zoo_runtime import server
    except ImportError:
        raise ZooError(f"zoo serve needs the rnn-zoo-runtime package: {INSTALL}") from None
    try:
        server.needs("zoo serve", INSTALL)
    except server.ServeError as e:
        raise ZooError(str(e)) from None
    return server
