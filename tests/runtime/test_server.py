"""The HTTP server (zoo_runtime.server) with the ONNX backend: `zoo-runtime serve` answers as
`zoo-runtime --json` and `zoo predict --json` do, batches concurrent requests, and keeps
serving through every fault (docs/serving.md). tests/core/test_serve.py has the torch side."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from zoo_runtime.server import OnnxBackend
from zoo_runtime.server.app import create_app
from zoo_runtime.server.backend import mergeable
from zoo_runtime.server.batcher import INLINE_SECONDS, Batcher, CallTimes
from zoo_runtime.server.metrics import Metrics

from tests.servers import (
    CASES,
    FakeBackend,
    Server,
    assert_no_traceback,
    runtime_serve,
    spec_serve,
)

FLOATS = {"forecaster", "forecaster-csv", "step-regression"}  # answers in numbers


def numbers_close(a, b) -> bool:
    """Equal, floats within 1e-5 (the ONNX graph's arithmetic against torch's)."""
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= 1e-5
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(numbers_close(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(numbers_close(a[k], b[k]) for k in a)
    return a == b


def cli_predictions(argv: list[str], capsys, main) -> list:
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    return json.loads(capsys.readouterr().out)["predictions"]


@pytest.mark.slow
def test_every_kind_answers_as_zoo_runtime_and_zoo_predict(kinds, zoo, capsys):
    """One server for every kind; each case alone and then all at once (joined in batches):
    exactly zoo-runtime --json's answers, and zoo predict --json's (floats within 1e-5)."""
    from zoo_runtime.__main__ import main as runtime_main

    names = list(CASES)
    with Server(runtime_serve(*(kinds[k][1] for k in names))) as server:
        cases = [(k, inputs, options) for k in names for inputs, options in CASES[k]]

        def ask(case):
            kind, inputs, options = case
            return server.predict(kind, inputs, options)

        alone = [ask(case) for case in cases]
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(ask, cases * 3))
        for (kind, inputs, options), (status, body) in zip(cases, alone):
            assert status == 200, body
            sets = [a for k, v in options.items() for a in ("--set", f"{k}={v}")]
            onnx, model = kinds[kind][1], kinds[kind][0]
            runtime = cli_predictions([str(onnx), *inputs, *sets, "--json"], capsys, runtime_main)
            assert body["predictions"] == runtime, kind
            result = zoo("predict", model, *inputs, *sets, "--json")
            assert result.code == 0, result.stderr
            want = result.json()["predictions"]
            if kind == "char-lm" and options.get("temperature") != 0:
                continue  # sampling: the runtime draws with its own generator (docs/export.md)
            if kind in FLOATS:  # ONNX arithmetic: the 4-decimal text may round the other way
                want = [{k: v for k, v in p.items() if k != "text"} for p in want]
                got = [{k: v for k, v in p.items() if k != "text"} for p in body["predictions"]]
                assert numbers_close(got, want), kind
            else:
                assert body["predictions"] == want, kind
        assert together == alone * 3


def test_mergeable_keeps_each_requests_meaning():
    assert mergeable("tagger", ["a"], {}) and mergeable("seq2seq", ["a b"], {"beam_size": 3})
    assert mergeable("forecaster", ["1 2 3", "4,5 6,7"], {})
    assert not mergeable("forecaster", ["1", "2"], {})  # numbers one an input: one window
    assert not mergeable("step-regression", ["1 2", "3"], {})
    assert mergeable("char-lm", ["To"], {"temperature": 0})
    assert not mergeable("char-lm", ["To"], {})  # sampling: one generator per request
    assert not mergeable("a-plugin's-kind", ["x"], {})


# --------------------------------------------------------------------------- batching
def run_batcher(backend, requests, *, max_batch=64, max_wait=0.0, cancel=()):
    """Submit `requests` (inputs lists) at once to a Batcher over `backend`; returns each
    request's answers or exception, in order."""

    async def main():
        batcher = Batcher(backend, Metrics(), max_batch, max_wait)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(requests[0], {}))
        await asyncio.sleep(0.05)  # the first request is running: the others queue
        rest = [asyncio.ensure_future(batcher.submit(r, {})) for r in requests[1:]]
        await asyncio.sleep(0)
        for i in cancel:
            rest[i - 1].cancel()
        results = await asyncio.gather(first, *rest, return_exceptions=True)
        await batcher.stop()
        return results

    return asyncio.run(main())


def test_concurrent_requests_share_a_batch_and_get_their_own_answers():
    backend = FakeBackend(delay=0.2)
    requests = [["a"], ["b", "c"], ["d"], ["e", "f", "g"]]
    results = run_batcher(backend, requests)
    assert backend.calls == [["a"], ["b", "c", "d", "e", "f", "g"]]
    assert [[p["output"] for p in r] for r in results] == [
        ["A"],
        ["B", "C"],
        ["D"],
        ["E", "F", "G"],
    ]


def test_a_batch_holds_at_most_max_batch_inputs():
    backend = FakeBackend(delay=0.1)
    run_batcher(backend, [["a"], ["b", "c"], ["d", "e"], ["f"]], max_batch=3)
    assert backend.calls == [["a"], ["b", "c", "f"], ["d", "e"]]


def test_one_failing_input_fails_only_its_request():
    backend = FakeBackend(delay=0.1)
    results = run_batcher(backend, [["a"], ["b"], ["boom"], ["c", "d"]])
    assert isinstance(results[2], RuntimeError)
    assert [p["output"] for p in results[1]] == ["B"] and len(results[3]) == 2
    assert backend.calls[1] == ["b", "boom", "c", "d"]  # joined, then one by one
    assert backend.calls[2:] == [["b"], ["boom"], ["c", "d"]]


def test_a_request_whose_caller_went_away_is_dropped():
    backend = FakeBackend(delay=0.1)
    results = run_batcher(backend, [["a"], ["gone"], ["b"]], cancel=(1,))
    assert isinstance(results[1], asyncio.CancelledError)
    assert backend.calls == [["a"], ["b"]]


def test_under_load_a_batch_waits_to_fill_and_a_lone_request_does_not():
    async def main():
        backend = FakeBackend()
        batcher = Batcher(backend, Metrics(), 64, 0.3)
        batcher.start()
        t0 = time.monotonic()
        await batcher.submit(["alone"], {})
        lone = time.monotonic() - t0
        batcher.load = 4.0  # as after batches of four requests
        t0 = time.monotonic()
        tasks = [asyncio.ensure_future(batcher.submit([x], {})) for x in "ab"]
        await asyncio.sleep(0.1)
        tasks.append(asyncio.ensure_future(batcher.submit(["c"], {})))
        await asyncio.gather(*tasks)
        waited = time.monotonic() - t0
        await batcher.stop()
        return backend.calls, lone, waited

    calls, lone, waited = asyncio.run(main())
    assert calls == [["alone"], ["a", "b", "c"]]
    assert lone < 0.2 and 0.25 <= waited < 2


def test_a_quick_call_runs_in_the_event_loop_and_a_slow_one_in_the_inference_thread():
    """Calls never timed and calls expected to take long go to the model's thread, so that
    the event loop keeps answering meanwhile; calls known to be quick run in the loop."""

    async def main(backend):
        batcher = Batcher(backend, Metrics(), 64, 0.0)
        batcher.start()
        gaps, done = [], False

        async def tick():  # how long the event loop goes without running this
            last = time.monotonic()
            while not done:
                await asyncio.sleep(0.005)
                gaps.append(time.monotonic() - last)
                last = time.monotonic()

        ticker = asyncio.ensure_future(tick())
        for x in ["a", "b", "c"]:
            await batcher.submit([x], {})
        await batcher.submit(["d"], {"other": "options"})  # options never timed: the thread
        done = True
        await ticker
        await batcher.stop()
        return max(gaps)

    quick = FakeBackend()
    asyncio.run(main(quick))
    loop_thread = threading.main_thread().name
    assert quick.threads[0].startswith("zoo-fake") and quick.threads[3].startswith("zoo-fake")
    assert quick.threads[1:3] == [loop_thread, loop_thread]
    slow = FakeBackend(delay=INLINE_SECONDS * 4)
    longest_gap = asyncio.run(main(slow))
    assert all(name.startswith("zoo-fake") for name in slow.threads)
    assert longest_gap < slow.delay / 2  # run in the loop, a call would stop it for all of it


def test_a_failing_input_in_a_call_run_in_the_event_loop_fails_only_its_request():
    """The event-loop path keeps the thread path's faults: a joined call that raises is run
    again one request at a time, and only the failing input's request gets the error."""

    async def main():
        backend = FakeBackend()
        batcher = Batcher(backend, Metrics(), 64, 0.0)
        batcher.start()
        await batcher.submit(["a"], {})  # timed in the thread: quick from now on
        tasks = [asyncio.ensure_future(batcher.submit([x], {})) for x in ("b", "boom", "c")]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await batcher.stop()
        return backend, results

    backend, results = asyncio.run(main())
    loop_thread = threading.main_thread().name
    assert backend.calls[1:] == [["b", "boom", "c"], ["b"], ["boom"], ["c"]]
    assert backend.threads[1:] == [loop_thread] * 4
    assert [p["output"] for p in results[0]] == ["B"] and [p["output"] for p in results[2]] == ["C"]
    assert isinstance(results[1], RuntimeError) and "fell over" in str(results[1])


def test_call_times_rise_at_once_and_fall_slowly():
    times = CallTimes()
    assert times.expected("{}", 10) == float("inf")
    times.add("{}", 1e-3)
    assert times.expected("{}", 10) == pytest.approx(1e-2)
    times.add("{}", 1e-5)  # one fast call: a fifth of the way down
    assert times.expected("{}", 1) == pytest.approx(1e-3 - 0.2 * (1e-3 - 1e-5))
    times.add("{}", 5e-3)  # one slow call: at once
    assert times.expected("{}", 1) == pytest.approx(5e-3)
    for k in range(CallTimes.KEYS + 1):
        times.add(str(k), 1.0)
    assert len(times.rates) <= CallTimes.KEYS


# -------------------------------------------------------------------- the app's faults
@pytest.fixture
def tagger_app(kinds):
    backend = OnnxBackend("tagger", str(kinds["tagger"][1]))
    app = create_app([backend, FakeBackend()], max_body=4096)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def post(client, model, payload=None, **kwargs):
    if payload is not None:
        kwargs["content"] = payload if isinstance(payload, bytes) else json.dumps(payload)
    r = client.post(f"/v1/models/{model}/predict", **kwargs)
    assert_no_traceback(r.text)
    return r.status_code, r.json()["detail"] if r.status_code != 200 else r.json()


@pytest.mark.parametrize(
    "payload, status, detail",
    [
        (b'{"inputs": ["a"', 422, "body: not JSON: Expecting"),
        (b"\xff\xfe", 422, "body: not"),
        ([], 422, "body: expected a JSON object"),
        ({"input": ["a"]}, 422, "body: unknown field 'input'"),
        ({"options": {}}, 422, "inputs: missing"),
        ({"inputs": "a"}, 422, "inputs: expected a list of strings, got a string"),
        ({"inputs": []}, 422, "inputs: empty"),
        ({"inputs": ["a", 2]}, 422, "inputs[1]: expected a string, got a number"),
        ({"inputs": ["a"], "options": [1]}, 422, "options: expected an object, got a list"),
        ({"inputs": ["a"], "options": {"batch_size": None}}, 422, "options.batch_size: expected"),
        ({"inputs": ["a"], "options": {"beam": 2}}, 422, "unknown option 'beam'"),
        ({"inputs": ["a"], "options": {"batch_size": "x"}}, 422, "option batch_size='x'"),
        ({"inputs": ["a"], "options": {"max_input_length": 9}}, 422, "options.max_input_length"),
        ({"inputs": ["w " * 3000]}, 413, "body: 6,"),
        ({"inputs": ["w " * 2001]}, 422, "input 1: 2,001 words, over the limit of 2,000"),
    ],
)
def test_each_fault_has_its_status_and_one_line(tagger_app, payload, status, detail):
    got_status, got = post(tagger_app, "tagger", payload)
    assert (got_status, got[: len(detail)]) == (status, detail), got
    assert "\n" not in got


def test_an_input_over_the_limit_is_refused_in_zoo_predicts_words(kinds):
    from zoo_runtime.__main__ import answer

    backend = OnnxBackend("tagger", str(kinds["tagger"][1]))
    app = create_app([backend], max_body=1 << 20)
    with TestClient(app) as client:
        status, detail = post(client, "tagger", {"inputs": ["ok", "w " * 2001]})
    assert status == 422
    assert detail == (
        "input 2: 2,001 words, over the limit of 2,000 words for one input; "
        "raise it with --set max_input_length=N"
    )
    assert answer([str(kinds["tagger"][1]), "ok", "w " * 2001]) == 2  # zoo-runtime's refusal


def test_the_streamed_size_counts_without_content_length(tagger_app):
    chunks = (b'{"inputs": ["' + b"a " * 1000 + b'"]}' for _ in range(3))
    status, detail = post(tagger_app, "tagger", content=chunks)
    assert status == 413 and "over the limit of 4,096 bytes" in detail


def test_unknown_model_is_404_and_a_failing_model_500(tagger_app):
    status, detail = post(tagger_app, "nope", {"inputs": ["a"]})
    assert status == 404 and detail == "no model named 'nope'; models: tagger, fake"
    status, detail = post(tagger_app, "fake", {"inputs": ["boom"]})
    assert status == 500 and detail == "internal error: RuntimeError: the model fell over"
    status, detail = post(tagger_app, "fake", {"inputs": ["bad"]})
    assert (status, detail) == (422, "input 1: bad")
    assert post(tagger_app, "fake", {"inputs": ["ok"]})[1]["predictions"][0]["output"] == "OK"
    r = tagger_app.get("/v1/models/nope")
    assert r.status_code == 404 and r.json()["detail"].startswith("no model named")


def test_models_health_docs_and_metrics(tagger_app, kinds):
    models = tagger_app.get("/v1/models").json()["models"]
    tagger = models[0]
    for key in ("name", "architecture", "task", "dataset", "metrics", "card"):
        assert key in tagger
    assert (tagger["name"], tagger["architecture"], tagger["backend"]) == (
        "tagger",
        "lstm-tagger",
        "onnx",
    )
    assert tagger["max_input_length"] == 2000 and tagger["input_unit"] == "words"
    assert tagger_app.get("/v1/models/tagger").json() == tagger
    assert tagger_app.get("/healthz").json() == {"status": "ok", "pid": os.getpid()}
    assert tagger_app.get("/readyz").json() == {"status": "ready"}
    schema = tagger_app.get("/openapi.json").json()
    body = schema["paths"]["/v1/models/{name}/predict"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["required"] == ["inputs"]
    assert "swagger" in tagger_app.get("/docs").text.lower()
    assert tagger_app.get("/").status_code == 200  # the page (S2's files)
    post(tagger_app, "tagger", {"inputs": ["The dog", "a"]})
    post(tagger_app, "tagger", {"inputs": [1]})
    text = tagger_app.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert samples[("zoo_requests_total", (("model", "tagger"), ("status", "200")))] == 1
    assert samples[("zoo_requests_total", (("model", "tagger"), ("status", "422")))] == 1
    assert samples[("zoo_errors_total", (("kind", "request"), ("model", "tagger")))] == 1
    assert samples[("zoo_batch_inputs_sum", (("model", "tagger"),))] >= 2  # warm-up + request
    assert samples[("zoo_request_seconds_count", (("model", "tagger"),))] == 2
    assert ("zoo_queue_inputs", (("model", "tagger"),)) in samples


# ----------------------------------------------------------------- the real server
def test_bad_inputs_in_a_busy_batch_fail_only_their_requests(kinds):
    """Real forecaster, requests at once: a wrong-length window is refused (422) while every
    other request is answered, each its own forecast."""
    good = [" ".join(str(0.1 * k + j) for k in range(10)) for j in range(12)]
    with Server(runtime_serve(kinds["forecaster"][1], "--max-wait-ms", "20")) as server:
        want = [server.predict("forecaster", [w])[1]["predictions"] for w in good]
        asks = [[w] for w in good] + [["1 2 3"]]
        with ThreadPoolExecutor(13) as pool:
            got = list(pool.map(lambda i: server.predict("forecaster", i), asks))
        code, _ = server.stop()
    assert [g[1]["predictions"] for g in got[:12]] == want
    assert got[12][0] == 422 and "expected a window of 10 values" in got[12][1]["detail"]
    assert code == 0


def test_sigterm_finishes_the_request_in_flight_and_exits_0(tmp_path):
    marker = tmp_path / "started"
    spec = {
        "loader": "tests.servers:fake_backends",
        "args": {"delay": 1.5, "marker": str(marker)},
        "app": {},
    }
    server = Server(spec_serve(spec)).start()
    result = {}
    thread = threading.Thread(target=lambda: result.update(r=server.predict("fake", ["x"])))
    thread.start()
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(OSError):  # no longer accepting
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    thread.join(timeout=20)
    code, err = server.stop()
    assert result["r"] == (200, {"predictions": [{"input": "x", "output": "X", "text": "X"}]})
    assert code == 0, err
    assert "Traceback" not in err


def test_port_in_use_and_bad_files_are_one_error_line(kinds, tmp_path):
    import subprocess

    from tests.servers import env

    onnx = str(kinds["tagger"][1])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        p = subprocess.run(
            runtime_serve(onnx, "--port", port), capture_output=True, text=True, env=env(),
            timeout=60,
        )  # fmt: skip
    assert p.returncode == 1
    assert p.stderr.splitlines() == [
        f"Error: --port {port}: cannot listen on 127.0.0.1:{port}: the port is in use"
    ]
    hostile = tmp_path / "hostile.onnx"
    hostile.write_bytes(b"\x08\xff\xff\xff\xff\x0f" + b"\x00" * 64)
    for bad in (str(tmp_path / "missing.onnx"), str(hostile)):
        served = subprocess.run(
            runtime_serve(bad), capture_output=True, text=True, env=env(), timeout=60
        )
        predicted = subprocess.run(
            [*runtime_serve(bad)[:3], bad, "x"], capture_output=True, text=True, env=env(),
            timeout=60,
        )  # fmt: skip
        assert served.returncode == predicted.returncode == 1
        assert served.stderr == predicted.stderr and len(served.stderr.splitlines()) == 1
        assert served.stderr.startswith("Error: ")


@pytest.mark.slow
def test_several_workers_share_the_port_and_stop_on_sigterm(kinds):
    """Each worker has its own socket on the port (SO_REUSEPORT): new connections spread over
    both, and every scrape, whichever worker answers it, counts the requests of both."""
    from tests.servers import request

    with Server(runtime_serve(kinds["tagger"][1], "--workers", "2")) as server:
        answers = [server.predict("tagger", ["The dog"]) for _ in range(20)]
        counts = set()
        for _ in range(40):
            text = request(server.url + "/metrics")[1]
            families = text_string_to_metric_families(text)
            counts.add(
                sum(s.value for f in families for s in f.samples if s.name == "zoo_requests_total")
            )
        code, err = server.stop()
    assert all(status == 200 for status, _ in answers)
    assert len({json.dumps(body) for _, body in answers}) == 1
    assert counts == {20}, counts
    assert code == 0, err


def test_usage_errors_of_zoo_runtime_serve():
    from zoo_runtime.__main__ import answer

    assert answer(["serve"]) == 2
    assert answer(["serve", "x.onnx", "--max-batch", "0"]) == 2


def test_numbers_close_is_strict_enough():
    assert numbers_close([1.0, {"a": [2.0]}], [1.0 + 1e-6, {"a": [2.0]}])
    assert not numbers_close([1.0], [1.001]) and not numbers_close("a", "b")
    assert np.isclose(1.0, 1.0)


def test_a_body_that_does_not_arrive_in_time_is_408():
    from zoo_runtime.server.app import RequestError, _body

    class Slow:
        headers: dict = {}  # noqa: RUF012

        async def stream(self):
            yield b'{"inputs": '
            await asyncio.sleep(5)
            yield b'["a"]}'

    with pytest.raises(RequestError) as e:
        asyncio.run(_body(Slow(), 1000, 0.1))
    assert (e.value.status, e.value.detail) == (408, "body: not received within 0.1 s")


def test_more_inputs_than_a_request_may_hold_is_422(kinds):
    app = create_app([OnnxBackend("tagger", str(kinds["tagger"][1]))])
    with TestClient(app) as client:
        status, detail = post(client, "tagger", {"inputs": ["a"] * 100_001})
    assert status == 422
    assert detail.startswith("inputs: 100,001 inputs, over the limit of 100,000 for one request")


def test_the_server_imports_neither_zoo_nor_torch(kinds):
    import subprocess
    import sys

    from tests.servers import env

    probe = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from zoo_runtime.server.app import create_app\n"
        "from zoo_runtime.server.backend import onnx_backends\n"
        f"with TestClient(create_app(onnx_backends([{str(kinds['tagger'][1])!r}]))) as c:\n"
        "    r = c.post('/v1/models/tagger/predict', json={'inputs': ['The dog']})\n"
        "print(r.status_code, sorted(m for m in ('torch', 'zoo') if m in sys.modules))\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env(), timeout=120
    )
    assert p.stdout.strip() == "200 []", p.stdout + p.stderr


def test_sigterm_makes_readyz_say_draining():
    from zoo_runtime.server.app import State, _note_draining

    seen = []
    before = signal.signal(signal.SIGTERM, lambda *a: seen.append("uvicorn's handler"))
    try:
        state = State([FakeBackend()], 64, 0.0)
        state.ready = True
        _note_draining(state)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
    finally:
        signal.signal(signal.SIGTERM, before)
    assert (state.draining, state.ready, seen) == (True, False, ["uvicorn's handler"])
    app = create_app([FakeBackend()])
    with TestClient(app) as client:
        client.app.state.zoo.draining = True
        r = client.get("/readyz")
    assert (r.status_code, r.json()) == (503, {"detail": "draining"})
