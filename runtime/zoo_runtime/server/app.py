"""The HTTP app: FastAPI endpoints over the served backends (docs/serving.md).

    GET  /v1/models                  every model: name, architecture, task, dataset, metrics, card
    GET  /v1/models/{name}           one of them
    POST /v1/models/{name}/predict   {"inputs": [...], "options": {...}} -> {"predictions": [...]}
    GET  /healthz, /readyz           alive (its pid); ready (models loaded, warmed, not draining)
    GET  /metrics                    Prometheus text (every worker's, summed)
    GET  /docs, /openapi.json        the OpenAPI schema and its page
    GET  /, /page/...                the page to try a model (files in page/)

The predict endpoint reads its body itself (size and time bounded), parses it with the json
module and checks it by hand: no pydantic model per request, so that a request costs little
beyond the model's own work. Every error is `{"detail": "one line"}`; nothing of a traceback
reaches a response.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from . import BODY_TIMEOUT, MAX_BATCH, MAX_BODY, MAX_WAIT_MS
from .backend import Backend, InputError, ModelFailure, dumps, one_line
from .batcher import Batcher
from .metrics import CONTENT_TYPE, Metrics

PAGE = Path(__file__).resolve().parent / "page"
JSON = "application/json"
FIELDS = ("inputs", "options")


class RequestError(Exception):
    """A request refused before it reaches a model: an HTTP status and one line."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


class State:
    """What the endpoints share: the backends, their batchers, metrics and readiness."""

    def __init__(self, backends: list[Backend], max_batch: int, max_wait: float):
        self.metrics = Metrics()
        self.backends = {b.name: b for b in backends}
        self.batchers = {b.name: Batcher(b, self.metrics, max_batch, max_wait) for b in backends}
        self.descriptions: dict[str, dict[str, Any]] = {}
        self.ready = self.draining = False


def create_app(
    backends: list[Backend],
    *,
    max_batch: int = MAX_BATCH,
    max_wait_ms: float = MAX_WAIT_MS,
    max_body: int = MAX_BODY,
    body_timeout: float = BODY_TIMEOUT,
) -> FastAPI:
    """The app serving `backends` (already loaded); it is ready once each is warmed."""
    state = State(backends, max_batch, max_wait_ms / 1000)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for batcher in state.batchers.values():
            batcher.start()
        _note_draining(state)
        loop = asyncio.get_running_loop()
        for name, backend in state.backends.items():
            state.descriptions[name] = await loop.run_in_executor(None, backend.describe)
            await loop.run_in_executor(state.batchers[name].executor, backend.warm)
        state.ready = True
        yield
        state.draining, state.ready = True, False
        for batcher in state.batchers.values():
            await batcher.stop()

    app = FastAPI(
        title="zoo serve",
        description="Predictions from rnn-zoo models over HTTP (docs/serving.md).",
        lifespan=lifespan,
    )
    app.state.zoo = state
    _routes(app, state, max_body, body_timeout)
    _page(app)

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception) -> Response:
        return _error(500, f"internal error: {type(error).__name__}")

    return app


def _note_draining(state: State) -> None:
    """On SIGTERM, /readyz says draining at once (uvicorn then stops accepting and finishes
    the requests in flight); the handler uvicorn installed still runs."""
    if threading.current_thread() is not threading.main_thread():
        return  # an app under a test client: no signals here
    previous = signal.getsignal(signal.SIGTERM)

    def draining(signum: int, frame: Any) -> None:
        state.draining, state.ready = True, False
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, draining)


def _error(status: int, detail: str) -> Response:
    return Response(dumps({"detail": detail}), status, media_type=JSON)


def _routes(app: FastAPI, state: State, max_body: int, body_timeout: float) -> None:
    @app.get("/healthz", summary="The process is alive; its pid (which worker answered)")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "pid": os.getpid()}

    @app.get("/readyz", summary="Ready: models loaded and warmed, not draining")
    async def readyz() -> Response:
        if state.ready and not state.draining:
            return Response(dumps({"status": "ready"}), 200, media_type=JSON)
        return _error(503, "draining" if state.draining else "starting")

    @app.get("/metrics", summary="Prometheus metrics of the server (every worker's, summed)")
    async def metrics() -> Response:
        return Response(state.metrics.text(), media_type=CONTENT_TYPE)

    @app.get("/v1/models", summary="Every model served")
    async def models() -> Response:
        return Response(dumps({"models": list(state.descriptions.values())}), media_type=JSON)

    @app.get("/v1/models/{name}", summary="One model", responses={404: {"description": "none"}})
    async def model(name: str) -> Response:
        if name not in state.descriptions:
            return _error(404, _unknown(state, name))
        return Response(dumps(state.descriptions[name]), media_type=JSON)

    @app.post(
        "/v1/models/{name}/predict",
        summary="Predict: the answers of `zoo predict --json` for these inputs and options",
        openapi_extra={"requestBody": PREDICT_BODY},
        responses=PREDICT_RESPONSES,
    )
    async def predict(name: str, request: Request) -> Response:
        return await _predict(state, name, request, max_body, body_timeout)


async def _predict(
    state: State, name: str, request: Request, max_body: int, body_timeout: float
) -> Response:
    start = time.perf_counter()
    batcher = state.batchers.get(name)
    if batcher is None:
        return _error(404, _unknown(state, name))
    try:
        body = await _body(request, max_body, body_timeout)
        inputs, options = parse(body)
        await _check(batcher, inputs, options)
        answers = await batcher.submit(inputs, options)
        status, payload = 200, dumps({"predictions": answers})
    except RequestError as e:
        status, payload, kind = e.status, dumps({"detail": e.detail}), "request"
    except InputError as e:
        status, payload, kind = 422, dumps({"detail": one_line(e, 1000)}), "input"
    except ModelFailure as e:
        status, payload, kind = 500, dumps({"detail": one_line(e)}), "model"
    except Exception as e:
        status, kind = 500, "internal"
        payload = dumps({"detail": f"internal error: {type(e).__name__}: {one_line(e)}"})
    m = state.metrics
    m.requests.labels(name, str(status)).inc()
    if status != 200:
        m.errors.labels(name, kind).inc()
    m.latency.labels(name).observe(time.perf_counter() - start)
    return Response(payload, status, media_type=JSON)


async def _check(batcher: Batcher, inputs: list[str], options: dict[str, Any]) -> None:
    """The backend's checks, in the event loop for a small request, else in a thread (100,000
    inputs take a while to measure)."""
    if len(inputs) <= 64:
        batcher.backend.check(inputs, options)
    else:
        await asyncio.get_running_loop().run_in_executor(
            None, batcher.backend.check, inputs, options
        )


def _unknown(state: State, name: str) -> str:
    return f"no model named {name[:100]!r}; models: {', '.join(state.backends) or 'none'}"


async def _body(request: Request, limit: int, timeout: float) -> bytes:
    """The request body, refused over `limit` bytes (by Content-Length, and as it streams) or
    when it takes more than `timeout` seconds to arrive (a slow client)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestError(400, "Content-Length: expected a number of bytes")
        if int(declared) > limit:
            raise RequestError(413, _too_large(int(declared), limit))
    chunks: list[bytes] = []
    size = 0

    async def receive() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, _too_large(size, limit, "over"))
            chunks.append(chunk)

    try:
        await asyncio.wait_for(receive(), timeout)
    except TimeoutError:
        raise RequestError(408, f"body: not received within {timeout:g} s") from None
    return b"".join(chunks)


def _too_large(size: int, limit: int, word: str = "") -> str:
    amount = f"{word} {size:,}".strip() if word else f"{size:,}"
    return f"body: {amount} bytes, over the limit of {limit:,} bytes for one request (--max-body)"


def parse(body: bytes) -> tuple[list[str], dict[str, Any]]:
    """(inputs, options) of a predict body; a RequestError (422) names the field at fault."""
    try:
        doc = json.loads(body)
    except UnicodeDecodeError as e:
        raise RequestError(422, f"body: not UTF-8 (byte {e.start + 1})") from None
    except json.JSONDecodeError as e:
        raise RequestError(
            422, f"body: not JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    if not isinstance(doc, dict):
        raise RequestError(422, 'body: expected a JSON object {"inputs": [...], "options": {}}')
    extra = [k for k in doc if k not in FIELDS]
    if extra:
        raise RequestError(422, f"body: unknown field {extra[0][:60]!r} (fields: inputs, options)")
    if "inputs" not in doc:
        raise RequestError(422, "inputs: missing; give a list of inputs (strings)")
    inputs, options = doc["inputs"], doc.get("options")
    if not isinstance(inputs, list):
        raise RequestError(422, f"inputs: expected a list of strings, got {_type(inputs)}")
    if not inputs:
        raise RequestError(422, "inputs: empty; give at least one input")
    for i, item in enumerate(inputs):
        if not isinstance(item, str):
            raise RequestError(422, f"inputs[{i}]: expected a string, got {_type(item)}")
    if options is None:
        return inputs, {}
    if not isinstance(options, dict):
        raise RequestError(422, f"options: expected an object, got {_type(options)}")
    for key, value in options.items():
        if isinstance(value, (dict, list)) or value is None:
            raise RequestError(
                422, f"options.{key[:60]}: expected a string, number or boolean, got {_type(value)}"
            )
    return inputs, options


def _type(value: Any) -> str:
    """A value's JSON type, as a client reads it."""
    names = {str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    names.update({list: "a list", dict: "an object", type(None): "null"})
    return names.get(type(value), type(value).__name__)


def _page(app: FastAPI) -> None:
    """The page to try a model (its own files, in page/): `/` and `/page/...`."""
    if not PAGE.is_dir():
        return
    app.mount("/page", StaticFiles(directory=PAGE), name="page")

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        page = PAGE / "index.html"
        if not page.is_file():
            return _error(404, "no page: page/index.html is missing")
        return FileResponse(page, media_type="text/html")


PREDICT_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        JSON: {
            "schema": {
                "type": "object",
                "required": ["inputs"],
                "additionalProperties": False,
                "properties": {
                    "inputs": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string"},
                        "description": "Inputs as `zoo predict` takes them: sentences, "
                        "numbers separated by spaces, ...",
                    },
                    "options": {
                        "type": "object",
                        "description": "Predict options (beam_size, temperature, ...), as "
                        "`zoo predict --set`",
                        "additionalProperties": {"type": ["string", "number", "boolean"]},
                    },
                },
            },
            "example": {"inputs": ["The dog ate the apple ."], "options": {}},
        }
    },
}
_DETAIL = {JSON: {"schema": {"type": "object", "properties": {"detail": {"type": "string"}}}}}
PREDICT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "One prediction per input, as `zoo predict --json`'s `predictions`"},
    404: {"description": "No such model", "content": _DETAIL},
    408: {"description": "The body did not arrive in time", "content": _DETAIL},
    413: {"description": "The body is over the limit (--max-body)", "content": _DETAIL},
    422: {"description": "A field, input or option at fault, named", "content": _DETAIL},
    500: {"description": "The model failed on this request's input", "content": _DETAIL},
}
