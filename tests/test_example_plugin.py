"""A third party's plugin, shipped as its own package, works through the `zoo` command.

The example package in docs/example-plugin (its own pyproject.toml, a new architecture and
dataset, and an extra command) is pip-installed into the test environment, then listed, run,
saved, loaded, evaluated and used for prediction, and uninstalled at the end.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO, run_zoo


def pip(*args):
    return subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    # Build from a copy so the build leaves nothing behind in the repository.
    source = tmp_path_factory.mktemp("src") / "example-plugin"
    shutil.copytree(REPO / "docs" / "example-plugin", source)
    p = pip("install", "--no-deps", "--no-build-isolation", "--no-index", str(source))
    assert p.returncode == 0, p.stdout + p.stderr
    yield
    pip("uninstall", "-y", "zoo-parity")


def test_listed_with_its_own_distribution(installed):
    r = run_zoo("list", "--json")
    assert r.code == 0, r.stderr
    archs = {a["name"]: a for a in r.json()["architectures"]}
    assert archs["lstm-classifier"]["distribution"] == "zoo-parity"
    assert archs["lstm-classifier"]["version"] == "1.0.0"
    assert archs["lstm-classifier"]["default_dataset"] == "parity"
    assert {"elman-rnn", "lstm-tagger"} <= set(archs)  # the built-ins are still there
    plugins = {p["name"]: p for p in run_zoo("plugins", "--json").json()["plugins"]}
    assert set(plugins["parity"]["hooks"]) == {
        "register_architectures",
        "register_datasets",
        "register_commands",
    }


def test_run_save_load_predict_eval_and_its_own_command(installed, tmp_path):
    model = tmp_path / "parity.safetensors"
    r = run_zoo("run", "lstm-classifier", "--out", model, "--json")
    assert r.code == 0, r.stderr
    assert r.json()["metrics"]["test"]["accuracy"] >= 0.95

    r = run_zoo("predict", model, "1011", "111000", "0", "1")
    assert r.code == 0, r.stderr
    assert r.stdout.split() == ["1011", "odd", "111000", "odd", "0", "even", "1", "odd"]

    data = tmp_path / "parity.txt"
    r = run_zoo("parity-data", data, "--count", "200", "--seed", "7")
    assert r.code == 0 and len(data.read_text().splitlines()) == 200
    r = run_zoo("eval", model, "--data", data, "--json")
    assert r.code == 0, r.stderr
    assert r.json()["metrics"]["accuracy"] >= 0.95

    info = run_zoo("inspect", model, "--json").json()
    assert info["plugin"] == {"name": "parity", "distribution": "zoo-parity", "version": "1.0.0"}


def test_a_model_file_whose_plugin_is_gone_says_what_to_install(installed, tmp_path):
    model = tmp_path / "parity.safetensors"
    assert run_zoo("run", "lstm-classifier", "--epochs", "1", "-q", "--out", model).code == 0
    pip("uninstall", "-y", "zoo-parity")
    try:
        r = run_zoo("predict", model, "101")
        assert r.code == 1
        assert (
            "needs architecture 'lstm-classifier' from zoo-parity 1.0.0, which is not installed"
            in r.stderr
        )
        assert "Traceback" not in r.stderr
    finally:
        source = REPO / "docs" / "example-plugin"
        build = tmp_path / "reinstall"
        shutil.copytree(source, build)
        assert (
            pip("install", "--no-deps", "--no-build-isolation", "--no-index", str(build)).returncode
            == 0
        )
