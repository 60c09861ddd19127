"""Plugins found through real entry points: broken ones and clashing ones, through `zoo` itself.

Each fake plugin is a module plus a `*.dist-info` folder (METADATA, entry_points.txt) on
PYTHONPATH, which is exactly what pip leaves behind when it installs a package.
"""

from __future__ import annotations

import textwrap

import pytest

from tests.conftest import run_zoo


def fake_distribution(root, dist, version, entry, module, source):
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[zoo]\n{entry} = {module}\n")


@pytest.fixture
def plugin_path(tmp_path):
    fake_distribution(
        tmp_path,
        "zoo-broken",
        "0.1",
        "broken",
        "broken_plugin",
        "raise ImportError('needs the package frobnicate')\n",
    )
    fake_distribution(
        tmp_path,
        "zoo-clash",
        "0.2",
        "clash",
        "clash_plugin",
        """
        from dataclasses import dataclass
        from zoo import Architecture, hookimpl

        @dataclass
        class C:
            pass

        @hookimpl
        def register_architectures(register):
            register(Architecture(name="elman-rnn", description="an impostor", tasks=("step-regression",),
                                  config=C, default_dataset="sine-cosine", implementation="clash_plugin"))

        @hookimpl
        def register_commands(cli):
            raise RuntimeError("command hook exploded")
    """,
    )
    return {"PYTHONPATH": str(tmp_path)}


def test_list_still_works_with_a_broken_and_a_clashing_plugin(plugin_path):
    r = run_zoo("list", env=plugin_path)
    assert r.code == 0, r.stderr
    assert "lstm-tagger" in r.stdout and "gru-regressor" in r.stdout
    assert "elman-rnn " not in r.stdout  # claimed twice: listed as a problem, not as usable
    assert "plugin 'broken' (zoo-broken 0.1) failed in import" in r.stderr
    assert "needs the package frobnicate" in r.stderr
    assert "rnn-zoo 0.1.0 (plugin 'elman-rnn') and zoo-clash 0.2 (plugin 'clash')" in r.stderr


def test_plugins_command_shows_failures_with_name_and_error(plugin_path):
    r = run_zoo("plugins", "--json", env=plugin_path)
    assert r.code == 0, r.stderr
    doc = r.json()
    names = {p["name"] for p in doc["plugins"]}
    assert {"lstm-tagger", "clash"} <= names
    failures = {(f["name"], f["stage"]): f["error"] for f in doc["failures"]}
    assert "needs the package frobnicate" in failures[("broken", "import")]
    assert "command hook exploded" in failures[("clash", "register_commands")]
    assert any("elman-rnn" in c and "zoo-clash 0.2" in c for c in doc["conflicts"])


@pytest.mark.slow
def test_using_a_broken_or_clashing_name_says_why(plugin_path, tmp_path):
    r = run_zoo("run", "broken", env=plugin_path, cwd=tmp_path)
    assert r.code == 1
    assert (
        "failed in import" in r.stderr and "frobnicate" in r.stderr and "Traceback" not in r.stderr
    )
    r = run_zoo("run", "elman-rnn", env=plugin_path, cwd=tmp_path)
    assert r.code == 1
    assert "registered by both" in r.stderr
    assert (
        "rnn-zoo 0.1.0 (plugin 'elman-rnn')" in r.stderr
        and "zoo-clash 0.2 (plugin 'clash')" in r.stderr
    )
    r = run_zoo(
        "run",
        "lstm-tagger",
        "--epochs",
        "1",
        "-q",
        "--out",
        tmp_path / "t.safetensors",
        env=plugin_path,
    )
    assert r.code == 0, r.stderr  # everything else still works
