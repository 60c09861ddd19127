"""Run files: `zoo run --config FILE` and `--print-config` (zoo/features/runconfig.py)."""

from __future__ import annotations

import math

import click
import pytest
from click.testing import CliRunner
from safetensors.torch import load_file

from tests.conftest import CSV_SMALL, SERIES, write
from zoo.cli import cli
from zoo.cli.base import command_arguments
from zoo.cli.train import run_command
from zoo.features.runconfig import toml_value, tomllib  # tomllib, or tomli on Python 3.10

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--set", "num_windows=64", "--set", "hidden_size=4"]


def printed(zoo, *args: str) -> dict:
    """The run file `zoo run ARGS --print-config` prints, parsed."""
    r = zoo("run", *args, "--print-config")
    assert r.code == 0, r.stderr
    return tomllib.loads(r.stdout)


def test_printed_config_trains_to_the_same_weights(zoo, tmp_path):
    """The printed file reproduces the run bit for bit, from another folder than the data's:
    paths in a run file are relative to the current folder, as on the command line."""
    write(tmp_path, "s.csv", SERIES)
    csv = [f"--set={k}={v}" for k, v in CSV_SMALL.items()]
    args = ["gru-regressor", "--dataset", "csv", "--data", "s.csv", "--epochs", "1", *csv]
    r = zoo("run", *args, "--set", "hidden_size=4", "--print-config")
    assert r.code == 0, r.stderr
    (tmp_path / "sub").mkdir()
    run_file = write(tmp_path / "sub", "run.toml", r.stdout)
    doc = tomllib.loads(r.stdout)
    assert doc["data"] == "s.csv" and "path" not in doc["settings"]
    assert doc["settings"]["hidden_size"] == 4 and doc["settings"]["split"] == [0.5, 0.25, 0.25]

    assert zoo("run", *args, "--set", "hidden_size=4", "--out", "a.safetensors", "-q").code == 0
    r = zoo("run", "--config", "sub/run.toml", "--out", "b.safetensors", "-q")
    assert r.code == 0, r.stderr
    a, b = load_file(tmp_path / "a.safetensors"), load_file(tmp_path / "b.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    # printing again from the file gives the same file
    again = zoo("run", "--config", "sub/run.toml", "--print-config").stdout
    assert again == run_file.read_text(encoding="utf-8")


def test_command_line_wins_over_the_file(zoo, tmp_path, monkeypatch):
    write(
        tmp_path,
        "run.toml",
        'architecture = "gru-regressor"\nepochs = 3\nlr = 0.5\n'
        '[settings]\nhidden_size = 6\nnum_windows = 64\nlr_schedule = "cosine"\n',
    )
    doc = printed(zoo, "--config", "run.toml")
    assert doc["architecture"] == "gru-regressor"
    s = doc["settings"]
    assert (s["epochs"], s["lr"], s["hidden_size"], s["lr_schedule"]) == (3, 0.5, 6, "cosine")

    s = printed(zoo, "--config", "run.toml", "--epochs", "2", "--set", "hidden_size=8")["settings"]
    assert (s["epochs"], s["hidden_size"], s["num_windows"]) == (2, 8, 64)
    # --set on the command line beats the file's dedicated option too
    assert printed(zoo, "--config", "run.toml", "--set", "lr=0.25")["settings"]["lr"] == 0.25
    monkeypatch.setenv("ZOO_RUN_EPOCHS", "4")
    args = ["run", "--config", "run.toml", "--print-config"]
    r = CliRunner().invoke(cli, args, auto_envvar_prefix="ZOO")  # as main()
    assert r.exit_code == 0 and tomllib.loads(r.stdout)["settings"]["epochs"] == 4
    # NAME on the command line beats the file's architecture
    write(tmp_path, "gru.toml", 'architecture = "gru-regressor"\n[settings]\nepochs = 2\n')
    other = printed(zoo, "lstm-tagger", "--config", "gru.toml")
    assert other["architecture"] == "lstm-tagger" and other["settings"]["epochs"] == 2
    # the file's settings must fit the architecture run; the error names the file
    r = zoo("run", "lstm-tagger", "--config", "run.toml", "--print-config")
    assert r.code == 2 and "run.toml [settings]: unknown setting 'num_windows'" in r.error_line()


def test_workers_get_the_config_option(tmp_path):
    """Under torchrun every worker runs the same command, so it reads the same file."""
    path = write(tmp_path, "run.toml", 'architecture = "gru-regressor"\nepochs = 2\n')
    with run_command.make_context("run", ["--config", str(path), "--nproc-per-node", "2"]) as ctx:
        args = command_arguments(ctx)
    assert f"--config={path}" in args and args[0] == "gru-regressor"
    assert not any(a.startswith("--nproc-per-node") for a in args)
    assert ctx.get_parameter_source("epochs") == click.core.ParameterSource.DEFAULT_MAP


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("epochs = 3\nlr = = 1\n", "not valid TOML: Invalid value (at line 2, column 6)"),
        ("epoch = 3\n", "unknown key 'epoch' (did you mean 'epochs'?)"),
        ('epochs = "three"\n', "epochs = 'three': expected an integer"),
        ("epochs = 2.5\n", "epochs = 2.5: expected an integer"),
        ("epochs = -1\n", "epochs = -1: -1 is not in the range x>=0"),
        ("out = 3\n", "out = 3: expected a string"),
        ("settings = 3\n", "'settings' must be a table"),
        ("[settings]\nhiden_size = 4\n", "[settings]: unknown setting 'hiden_size' (did you"),
        ('[settings]\nhidden_size = "big"\n', "[settings]: hidden_size='big' is not valid"),
        ("[settings]\nmodel.size = 4\n", "[settings]: model has no setting 'size'"),
        ("x = " + "[" * 5_000 + "]" * 5_000 + "\n", "not valid TOML for zoo: arrays or tables"),
        ("x = " + "{a = " * 3_000 + "1" + "}" * 3_000 + "\n", "nested too deeply"),
    ],
)
def test_bad_run_files_are_one_error_line(zoo, tmp_path, content, expected):
    if content is not None:
        write(tmp_path, "run.toml", content)
    r = zoo("run", "gru-regressor", "--config", "run.toml", "--set", "num_windows=64")
    assert r.code == 2
    line = r.error_line()
    assert "run.toml" in line and expected in line, line


def test_print_config_needs_a_name_and_no_resume(zoo):
    assert "give the architecture NAME" in zoo("run", "--print-config").error_line()
    r = zoo("run", "--resume", "x.ckpt.safetensors", "--print-config")
    assert r.code == 2 and "checkpoint" in r.error_line()


@pytest.mark.parametrize(
    "value",
    [
        'say "hi"\\ \n\t\x7f\x01 é 🦀',
        0.1,
        1e-05,
        -2.5e16,
        math.inf,
        3,
        True,
        [1, 2],
        ["a", "b"],
        {"k y": [0.5]},
    ],
)
def test_toml_values_read_back(value):
    assert tomllib.loads(f"x = {toml_value(value)}")["x"] == value
