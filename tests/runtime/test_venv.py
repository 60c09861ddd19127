"""The runtime needs no torch: in a fresh virtual environment holding numpy, onnxruntime and
the runtime folder only (from the configured pip index), `import torch` fails and the runtime
predicts what `zoo predict` does on the same inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv

import pytest

import zoo
from tests.runtime.conftest import RUNTIME

SENTENCES = ["The dog ate the apple .", "Everybody read that book", "zyzzyva reads"]
WINDOW = [str(0.3 * k) for k in range(10)]


@pytest.mark.slow
def test_a_torch_free_environment_predicts_as_zoo_does(exported, tmp_path):
    tagger, tagger_onnx, _ = exported("lstm-tagger", "toy-tags", hidden_size=8)
    forecaster, forecaster_onnx, _ = exported("gru-regressor", "sine-windows", hidden_size=8)
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    install = [str(python), "-m", "pip", "install", "-q", "numpy", "onnxruntime", str(RUNTIME)]
    p = subprocess.run(install, env=environment, timeout=600, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr

    def runtime(*args: str) -> dict:
        p = subprocess.run(
            [str(python), "-m", "zoo_runtime", *args, "--json"],
            capture_output=True,
            text=True,
            env=environment,
            timeout=120,
            cwd=tmp_path,
        )
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    no_torch = subprocess.run(
        [str(python), "-c", "import torch"], capture_output=True, env=environment, cwd=tmp_path
    )
    assert no_torch.returncode != 0 and b"No module named 'torch'" in no_torch.stderr
    assert runtime(str(tagger_onnx), *SENTENCES)["predictions"] == zoo.predict(tagger, SENTENCES)
    got = runtime(str(forecaster_onnx), *WINDOW)["predictions"]
    want = zoo.predict(forecaster, WINDOW)
    assert [p["text"] for p in got] == [p["text"] for p in want]
    assert sys.prefix != str(env_dir)
