"""Helpers of the serving tests (tests/runtime/test_server.py, tests/core/test_serve.py): a
real server in a subprocess on 127.0.0.1, bounded waits, plain urllib requests; a fake backend
whose predict is slow or fails on demand, to make batching and faults deterministic."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "runtime"

# Inputs of each kind in tests/runtime/conftest.py's KINDS, with options: (inputs, options).
CASES = {
    "tagger": [(["The dog ate the apple .", "a", "zyzzyva unknownword The"], {})],
    "tagger-columns": [(["Dogs bark .", "She read quickly"], {})],
    "forecaster": [
        ([" ".join(str(0.1 * k) for k in range(10)), " ".join(str(-k) for k in range(12))], {}),
        ([str(0.2 * k) for k in range(10)], {}),  # one number an input: one window
    ],
    "forecaster-csv": [(["0 1 2 3", "4 3 2 1 0"], {})],
    "step-regression": [(["0 0.3 0.6 0.9", "1 2"], {})],
    "step-classification": [(["hello", "hell"], {})],
    "char-lm": [
        (["To be", "T"], {"temperature": 0, "length": 12}),
        (["To", "be"], {"length": 8, "seed": 2}),
    ],
    "seq2seq": [(["jump twice", "walk left", "look"], {}), (["jump twice"], {"beam_size": 3})],
}
TRACEBACK_MARKS = ("Traceback", 'File "')


def env() -> dict[str, str]:
    """The subprocess's environment: this checkout's runtime first on the path (a stale
    installed copy would serve old code), the repository root for the fake backends."""
    paths = [str(RUNTIME), str(ROOT), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(
    url: str, doc: Any = None, *, data: bytes | None = None, timeout: float = 30
) -> tuple[int, Any]:
    """(status, decoded JSON or text) of a GET, or a POST of `doc` (or raw `data`)."""
    body = data if data is not None else (None if doc is None else json.dumps(doc).encode())
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    text = raw.decode("utf-8")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


class Server:
    """A server command running on a free port; `start()` waits (bounded) until /readyz."""

    def __init__(self, command: list[str], port: int | None = None, cwd: Path | None = None):
        self.port = port or free_port()
        self.command = [*command, "--port", str(self.port)]
        self.url = f"http://127.0.0.1:{self.port}"
        self.cwd = cwd
        self.process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 90) -> Server:
        self.process = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(),
            cwd=self.cwd,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                _out, err = self.process.communicate()
                raise AssertionError(f"the server ended ({self.process.returncode}): {err[-2000:]}")
            try:
                if request(self.url + "/readyz", timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"the server was not ready within {timeout} s")

    def predict(self, model: str, inputs: list[str], options: dict | None = None) -> tuple:
        doc: dict[str, Any] = {"inputs": inputs}
        if options is not None:
            doc["options"] = options
        return request(f"{self.url}/v1/models/{model}/predict", doc)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, str]:
        """(exit code, stderr) after `sig`; killed if it outlives `timeout`."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            _, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return self.process.returncode, err

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()


def runtime_serve(*args: Any) -> list[str]:
    return [sys.executable, "-m", "zoo_runtime", "serve", *map(str, args)]


def zoo_serve(*args: Any) -> list[str]:
    return [sys.executable, "-m", "zoo", "serve", *map(str, args)]


def spec_serve(spec: dict[str, Any]) -> list[str]:
    """A server of `spec` (zoo_runtime.server.serve), e.g. with the fake backends; takes
    --port like the commands."""
    code = (
        "import json, sys; from zoo_runtime.server import serve; "
        f"serve(json.loads({json.dumps(spec)!r}), port=int(sys.argv[2]), graceful_timeout=20)"
    )
    return [sys.executable, "-c", code]


def assert_no_traceback(body: Any) -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    assert not any(mark in text for mark in TRACEBACK_MARKS), text


class FakeBackend:
    """A backend whose predict upper-cases its inputs after `delay` seconds; the input
    "boom" makes it raise (a model failing on one input), "bad" fails its check. Each call's
    inputs are kept in `calls`, the thread that ran it in `threads`; with `marker`, a file is
    written when a predict starts."""

    backend = "fake"

    def __init__(self, name: str = "fake", delay: float = 0.0, marker: str | None = None):
        self.name, self.delay, self.marker = name, delay, marker
        self.calls: list[list[str]] = []
        self.threads: list[str] = []

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "architecture": "fake", "task": "fake", "kind": "fake"}

    def check(self, inputs: list[str], options: dict[str, Any]) -> None:
        from zoo_runtime.server import InputError

        if "bad" in inputs:
            raise InputError(f"input {inputs.index('bad') + 1}: bad")

    def mergeable(self, inputs: list[str], options: dict[str, Any]) -> bool:
        return True

    def predict(self, inputs: list[str], options: dict[str, Any]) -> list[dict[str, Any]]:
        self.calls.append(list(inputs))
        self.threads.append(threading.current_thread().name)
        if self.marker:
            Path(self.marker).write_text("started")
        time.sleep(self.delay)
        if "boom" in inputs:
            raise RuntimeError("the model fell over\n  with a second line")
        return [{"input": x, "output": x.upper(), "text": x.upper()} for x in inputs]

    def warm(self) -> None:
        pass


def fake_backends(delay: float = 0.0, marker: str | None = None) -> list[FakeBackend]:
    """The loader of a spec serving one FakeBackend (spec_serve)."""
    return [FakeBackend(delay=delay, marker=marker)]
