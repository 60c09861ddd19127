"""`zoo serve` (zoo/cli/serve.py) and its torch backend (zoo/features/serve.py): answers
exactly as `zoo predict --json` for every built-in architecture, `.onnx` files beside
`.safetensors` ones, the errors of a bad start as one line, and a light `zoo --help`.
The server itself is tested with the ONNX backend in tests/runtime/test_server.py."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.runtime.conftest import save_kinds
from tests.servers import CASES, Server, assert_no_traceback, zoo_serve

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Every kind of tests/runtime/conftest.py's KINDS saved (no export); the tagger also
    exported as tagger-onnx.onnx: kind -> path."""
    import zoo
    from zoo.features.export import export_onnx

    out = {
        k: model for k, (model, _) in save_kinds(tmp_path_factory.mktemp("serve"), False).items()
    }
    out["tagger-onnx"] = out["tagger"].with_name("tagger-onnx.onnx")
    export_onnx(zoo.load(out["tagger"]), out["tagger-onnx"])
    return out


@pytest.mark.slow
def test_every_architecture_answers_exactly_as_zoo_predict(saved, zoo):
    """One `zoo serve` for every kind (and an .onnx file beside them): each case alone and
    then all at once, joined in batches where the answers allow: zoo predict --json's."""
    with Server(zoo_serve(*saved.values())) as server:
        cases = [(k, inputs, options) for k in CASES for inputs, options in CASES[k]]

        def ask(case):
            return server.predict(*case)

        alone = [ask(case) for case in cases]
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(ask, cases * 3))
        onnx = server.predict("tagger-onnx", CASES["tagger"][0][0])
        models = json.loads(server_get(server, "/v1/models"))["models"]
        code, err = server.stop()
    for (kind, inputs, options), (status, body) in zip(cases, alone):
        assert status == 200, body
        sets = [a for k, v in options.items() for a in ("--set", f"{k}={v}")]
        result = zoo("predict", saved[kind], *inputs, *sets, "--json")
        assert result.code == 0, result.stderr
        assert body["predictions"] == result.json()["predictions"], kind
    assert together == alone * 3
    assert onnx == alone[0]  # the tagger's ONNX export tags as its model does
    backends = {m["name"]: m["backend"] for m in models}
    assert backends["tagger"] == "torch" and backends["tagger-onnx"] == "onnx"
    assert all(m["card"].startswith("---\nlibrary_name: rnn-zoo") for m in models[:8])
    assert code == 0, err  # SIGTERM: drained and exited 0


def server_get(server, path):
    from tests.servers import request

    status, body = request(server.url + path)
    assert status == 200
    return json.dumps(body)


def test_the_torch_backend_checks_as_zoo_predict(saved):
    from fastapi.testclient import TestClient
    from zoo_runtime.server.app import create_app

    from zoo.features.serve import backends

    app = create_app(backends([str(saved["tagger"]), str(saved["seq2seq"])]))
    with TestClient(app) as client:

        def post(model, doc):
            r = client.post(f"/v1/models/{model}/predict", json=doc)
            assert_no_traceback(r.text)
            return r.status_code, r.json()

        assert post("tagger", {"inputs": ["w " * 2001]}) == (
            422,
            {
                "detail": "input 1: 2,001 words, over the limit of 2,000 words for one input; "
                "raise it with --set max_input_length=N"
            },
        )
        status, body = post("tagger", {"inputs": ["a"], "options": {"impl": "cells"}})
        assert status == 422 and body["detail"].startswith("options.impl: a model setting")
        status, body = post("seq2seq", {"inputs": ["jump"], "options": {"beam_size": "x"}})
        assert status == 422 and "beam_size" in body["detail"]
        status, body = post("seq2seq", {"inputs": [""]})
        assert (status, body) == (422, {"detail": "input 1 is empty: give a sequence to translate"})
        assert post("seq2seq", {"inputs": ["jump"]})[0] == 200
        model = client.get("/v1/models/tagger").json()
        assert (model["architecture"], model["task"], model["backend"]) == (
            "lstm-tagger",
            "tagging",
            "torch",
        )
        assert model["options"]["batch_size"] == 256 and model["max_input_length"] == 2000


def test_each_process_runs_torch_at_the_threads_asked(saved):
    import torch

    from zoo.features.serve import backends

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        backends([str(saved["tagger"])], threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_the_torch_backend_predicts_as_the_model_with_its_options_resolved_once(saved, monkeypatch):
    """The backend skips Model.predict's per-call work, not its answers: the same predictions
    for each set of options, each set resolved once and kept (at most MAX_OPTION_SETS)."""
    from zoo_runtime.server.backend import InputError

    import zoo
    from zoo.features import serve

    (backend,) = serve.backends([str(saved["seq2seq"])])
    model = zoo.load(saved["seq2seq"])
    for options in ({}, {"beam_size": 2}, {"predict.beam_size": 3}):
        backend.check(["jump twice"], options)
        assert backend.predict(["jump twice", "walk"], options) == model.predict(
            ["jump twice", "walk"], **{"batch_size": 12, **options}
        )
    assert backend.options({"beam_size": 2}) is backend.options({"beam_size": 2})
    with pytest.raises(InputError, match="beam_size"):
        backend.options({"beam_size": "x"})
    monkeypatch.setattr(serve, "MAX_OPTION_SETS", 2)
    backend.options({"beam_size": 4})
    assert len(backend.resolved) <= 2


def test_a_bad_model_file_is_refused_as_zoo_predict_refuses_it(zoo, tmp_path):
    hostile = tmp_path / "hostile.safetensors"
    hostile.write_bytes(b"\xff" * 8 + b"{not json")
    for bad in (tmp_path / "missing.safetensors", hostile, tmp_path / "missing.onnx"):
        served, predicted = zoo("serve", bad), zoo("predict", bad, "x")
        assert served.code == 1 and served.error_line()
        if bad.suffix == ".safetensors":
            assert (served.code, served.error_line()) == (predicted.code, predicted.error_line())
        else:  # an .onnx file opens in the runtime: its words, as zoo-runtime's
            assert "missing.onnx" in served.error_line()


def test_a_port_in_use_is_one_error_line(saved, zoo):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = zoo("serve", saved["tagger"], "--port", port)
    assert result.code == 1
    assert result.error_line() == (
        f"Error: --port {port}: cannot listen on 127.0.0.1:{port}: the port is in use"
    )


@pytest.mark.parametrize(
    "missing, words",
    [
        (
            "fastapi",
            "Error: zoo serve needs fastapi: pip install 'rnn-zoo[serve]' './runtime[serve]'",
        ),
        ("zoo_runtime", "Error: zoo serve needs the rnn-zoo-runtime package: pip install"),
    ],
)
def test_without_the_server_packages_one_line_says_what_to_install(
    zoo, saved, monkeypatch, missing, words
):
    monkeypatch.setitem(sys.modules, missing, None)
    if missing == "zoo_runtime":
        monkeypatch.setitem(sys.modules, "zoo_runtime.server", None)
    result = zoo("serve", saved["tagger"])
    assert result.code == 1 and result.error_line().startswith(words)


def test_usage_errors_exit_2(zoo, saved):
    assert zoo("serve").code == 2
    assert zoo("serve", saved["tagger"], "--max-batch", "0").code == 2


def test_the_help_states_the_servers_defaults():
    from zoo_runtime import server

    from zoo.cli.serve import DEFAULTS

    assert DEFAULTS == {
        "max_batch": server.MAX_BATCH,
        "max_wait_ms": server.MAX_WAIT_MS,
        "group": server.GROUP,
        "max_body": server.MAX_BODY,
        "max_workers": server.MAX_WORKERS,
    }


def test_zoo_help_and_serve_help_import_neither_torch_nor_the_server():
    probe = (
        "import sys\nfrom zoo.cli import cli\n"
        "for args in (['--help'], ['serve', '--help']):\n"
        "    try:\n        cli.main(args=args, prog_name='zoo')\n"
        "    except SystemExit:\n        pass\n"
        "print(sorted(m for m in ('torch', 'fastapi', 'uvicorn', 'zoo_runtime') if m in sys.modules))"
    )
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert p.stdout.strip().endswith("[]"), p.stdout + p.stderr
    assert "serve" in p.stdout and "--max-batch" in p.stdout


def test_a_device_that_is_not_there_is_a_usage_error(zoo, saved):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = zoo("serve", saved["tagger"], "--device", "cuda")
    assert result.code == 2
    assert result.error_line().startswith("Error: --device cuda: no CUDA GPU is available")
    assert zoo("serve", saved["tagger"], "--device", "banana").code == 2
