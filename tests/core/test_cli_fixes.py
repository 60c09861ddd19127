"""The command line's fixes, on the built-in plugins: quiet closed pipes, trained-model settings
(`--set impl=cells`) on eval and predict, help texts, `--set` named once in errors, a failing
command's single stderr line, a full disk, shell completion, ZOO_<COMMAND>_<OPTION>
variables, and blank lines kept aligned by `zoo predict --input`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import zoo as zoo_api
from tests.conftest import Result, fill, run_zoo, write
from zoo.core.registry import get_registry

ZOO = Path(sys.executable).parent / "zoo"


def trained(folder: Path, name: str, dataset: str | None, **settings: Any) -> Path:
    path = folder / f"{name}.safetensors"
    zoo_api.run(name, dataset, out=path, **settings)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny models of the built-in plugins, trained once for the module."""
    folder = tmp_path_factory.mktemp("models")
    return {
        # an LSTM trained with torch's fused layers, which impl=cells steps through
        "char-pairs": trained(folder, "elman-rnn", "char-pairs", cell="lstm", epochs=3),
        "tagger": trained(folder, "lstm-tagger", None, epochs=1, hidden_size=8),
    }


def stderr_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


# ---------------------------------------------------------------- (a) a closed stdout pipe
def in_pipe(command: str, folder: Path) -> tuple[str, str, int]:
    """`zoo COMMAND 2>err.txt | head -1` in a real shell: (what head printed, zoo's stderr,
    zoo's exit status)."""
    err, status = folder / "err.txt", folder / "status.txt"
    line = f'"{ZOO}" {command} 2>"{err}" | head -1; echo "${{PIPESTATUS[0]}}" >"{status}"'
    p = subprocess.run(
        line, shell=True, executable="/bin/bash", capture_output=True, text=True, cwd=folder
    )
    assert p.returncode == 0, p.stderr
    return p.stdout, err.read_text(), int(status.read_text())


@pytest.mark.parametrize(
    "command",
    [
        "list",
        "inspect MODEL",
        pytest.param("info lstm-tagger", marks=pytest.mark.slow),
    ],
)
def test_head_closing_the_pipe_is_not_an_error(
    command: str, models: dict[str, Path], zoo, tmp_path: Path
) -> None:
    args = command.replace("MODEL", str(models["char-pairs"]))
    full = zoo(*args.split())
    assert full.code == 0, full.stderr
    first = full.stdout.splitlines()[0]
    for _ in range(3):
        out, err, status = in_pipe(args, tmp_path)
        assert err == ""
        assert out == first + "\n"
        assert status in (0, 141)  # done, or ended by the closed pipe as Unix tools are


# ------------------------------------------------------ (b) settings that keep the weights
def metrics_of(result: Result) -> dict[str, Any]:
    assert result.code == 0, result.stderr
    return result.json()["metrics"]


def assert_same_metrics(got: dict[str, Any], expected: dict[str, Any]) -> None:
    assert set(got) == set(expected)
    for key, value in expected.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
        else:
            assert got[key] == value, key


@pytest.mark.parametrize("impl", ["cells", "torch"])
def test_eval_with_another_impl_gives_the_same_metrics(
    impl: str, models: dict[str, Path], zoo
) -> None:
    model = models["char-pairs"]
    plain = metrics_of(zoo("eval", model, "--json"))
    assert "accuracy" in plain
    assert_same_metrics(metrics_of(zoo("eval", model, "--set", f"impl={impl}", "--json")), plain)


def test_predict_with_cells_gives_the_same_output(models: dict[str, Path], zoo) -> None:
    model = models["char-pairs"]
    plain = zoo("predict", model, "hello", "lolo")
    cells = zoo("predict", model, "hello", "lolo", "--set", "impl=cells")
    assert plain.code == cells.code == 0, plain.stderr + cells.stderr
    assert plain.stdout.count("\n") == 2
    assert cells.stdout == plain.stdout


def test_a_setting_that_changes_the_tensors_is_refused_on_eval(
    models: dict[str, Path], zoo
) -> None:
    result = zoo("eval", models["char-pairs"], "--set", "hidden_size=7")
    assert result.code == 2
    line = result.error_line()
    assert line.startswith("Error: --set hidden_size=7")
    assert "would change" in line and "tensors" in line
    assert stderr_lines(result) == [line]
    assert result.stdout == ""


# ------------------------------------------------------------------------ (c) help texts
def set_help(help_text: str) -> str:
    """The description of --set in a command's --help, on one line."""
    lines = help_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("--set"))
    block = [lines[start].strip().removeprefix("--set").strip()]
    for line in lines[start + 1 :]:
        if line.strip().startswith("-") or not line.strip():
            break
        block.append(line.strip())
    return " ".join(block)


@pytest.mark.parametrize("command", ["predict", "gates"])
def test_set_is_described_as_predict_options(command: str, zoo) -> None:
    result = zoo(command, "--help")
    assert result.code == 0
    text = set_help(result.stdout).lower()
    assert "predict option" in text
    assert "training" not in text


# --------------------------------------------------------- (d) `--set` named by the CLI only
def test_the_api_names_the_setting_without_set() -> None:
    with pytest.raises(zoo_api.SettingError) as info:
        zoo_api.create("lstm-tagger", hidden_size=-1)
    assert "hidden_size=-1" in str(info.value)
    assert "--set" not in str(info.value)


def test_the_cli_names_set_once(zoo) -> None:
    result = zoo("run", "lstm-tagger", "--set", "hidden_size=-1")
    assert result.code == 2
    assert result.error_line() == "Error: --set hidden_size=-1 is below its minimum 1"


def test_a_set_key_named_like_a_parameter_of_the_verb_is_a_setting_or_a_usage_line(
    zoo, tmp_path: Path
) -> None:
    """`--set split=...` on zoo eval is the csv dataset's split (it reached evaluate() as a
    second `split`: an internal error); --set keys named like zoo.run's or predict's own
    parameters are one usage line, exit 2, not an internal error."""
    from tests.conftest import CSV_SMALL

    rows = "".join(f"2020-01-{1 + h // 24:02d} {h % 24:02d}:00:00,{h % 5}\n" for h in range(96))
    series = write(tmp_path, "series.csv", "date,v\n" + rows)
    model = tmp_path / "fc.safetensors"
    zoo_api.run("gru-regressor", "csv", series, out=model, epochs=1, hidden_size=4, **CSV_SMALL)

    def windows(*args: str) -> int:
        r = zoo("eval", model, "--json", *args)
        assert r.code == 0, r.stderr
        return r.json()["metrics"]["windows"]

    assert windows("--set", "split=0.25,0.25,0.5") > windows()  # more rows held out for test
    for args in (
        ["run", "gru-regressor", "--steps", "1", "--set", "progress=1"],
        ["run", "gru-regressor", "--steps", "1", "--set", "out=x.safetensors"],
        ["predict", model, "1 2 3 4", "--set", "inputs=1"],
    ):
        r = zoo(*args)
        assert r.code == 2 and "internal error" not in r.stderr, r.stderr
        assert r.error_line().startswith("Error: --set "), r.stderr


# ------------------------------------------------------------- (e) one stderr line failing
@pytest.mark.parametrize(
    "args",
    [["--split", "nosuch"], ["--set", "nosuch_setting=1"], ["--data", "NONE"]],
    ids=["split", "setting", "data"],
)
def test_a_failing_eval_prints_only_its_error_line(
    args: list[str], models: dict[str, Path], zoo, tmp_path: Path
) -> None:
    args = [str(tmp_path / "none.txt") if a == "NONE" else a for a in args]
    result = zoo("eval", models["char-pairs"], *args)
    assert result.code in (1, 2)
    assert stderr_lines(result) == [result.error_line()]
    assert result.stdout == ""


def test_eval_of_a_missing_model_file_prints_only_its_error_line(zoo, tmp_path: Path) -> None:
    result = zoo("eval", tmp_path / "missing.safetensors")
    assert result.code != 0
    assert stderr_lines(result) == [result.error_line()]
    assert "missing.safetensors" in result.error_line()


@pytest.mark.slow
def test_a_failing_eval_process_prints_one_stderr_line(
    models: dict[str, Path], tmp_path: Path
) -> None:
    """The same in a real process, where nothing else (import warnings, a final flush) may
    reach stderr either."""
    result = run_zoo("eval", models["char-pairs"], "--split", "nosuch", cwd=tmp_path)
    assert result.code == 2
    line = result.error_line()
    assert stderr_lines(result) == [line]
    assert "nosuch" in line


# --------------------------------------------------------------------------- (f) disk full
def test_a_full_disk_keeps_the_previous_model_file(
    models: dict[str, Path], tiny_disk: Path, zoo
) -> None:
    target = tiny_disk / "m.safetensors"
    shutil.copyfile(models["char-pairs"], target)
    before = target.read_bytes()
    fill(tiny_disk)
    result = zoo("run", "elman-rnn", "--epochs", "1", "--out", target)
    assert result.code == 1
    line = result.error_line()
    assert str(target) in line
    assert "previous file is unchanged" in line
    assert "internal error" not in result.stderr.lower()
    assert "bug" not in result.stderr.lower()
    assert target.read_bytes() == before
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler", "m.safetensors"]


# ---------------------------------------------------------------------- (g) completion
def completions(words: str) -> list[str]:
    """What bash completion offers for the last word of `words` (a trailing space: a new
    word), from the installed zoo script."""
    parts = words.split()
    cword = len(parts) if words.endswith(" ") else len(parts) - 1
    env = {
        **os.environ,
        "_ZOO_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(cword),
    }
    p = subprocess.run([str(ZOO)], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    return [line.split(",", 1)[1] for line in p.stdout.splitlines() if "," in line]


def test_info_completes_architecture_names() -> None:
    offered = completions("zoo info lstm")
    assert "lstm-tagger" in offered
    assert all(name.startswith("lstm") for name in offered)


def test_run_completes_architectures() -> None:
    assert sorted(completions("zoo run ")) == get_registry().list_architectures()


def test_dataset_option_completes_dataset_names() -> None:
    reg = get_registry()
    offered = completions("zoo run elman-rnn --dataset ")
    assert set(reg.compatible_datasets("elman-rnn")) <= set(offered) <= set(reg.list_datasets())
    assert completions("zoo run elman-rnn --dataset char") == ["char-pairs"]


# ------------------------------------------------------------- (h) environment variables
@pytest.mark.slow
def test_options_come_from_zoo_command_option_variables(tmp_path: Path) -> None:
    run = run_zoo(
        "run",
        "elman-rnn",
        "--json",
        "--out",
        "m.safetensors",
        env={"ZOO_RUN_EPOCHS": "1"},
        cwd=tmp_path,
    )
    assert run.code == 0, run.stderr
    doc = run.json()
    assert doc["training"]["epochs"] == 1
    assert doc["settings"]["train"]["epochs"] == 1
    evaluated = run_zoo(
        "eval", "m.safetensors", "--json", env={"ZOO_EVAL_SPLIT": "valid"}, cwd=tmp_path
    )
    assert evaluated.code == 0, evaluated.stderr
    result = evaluated.json()
    assert result["split"] == "valid"
    assert result["metrics"]["loss"] == pytest.approx(doc["metrics"]["valid"]["loss"], rel=1e-6)


def test_environment_variables_are_named_after_the_option_as_typed():
    """--json and --data are parameters `as_json` and `data_path` behind the scenes; their
    variables still read ZOO_LIST_JSON and ZOO_RUN_DATA, as the option is typed."""
    listed = run_zoo("list", env={"ZOO_LIST_JSON": "1"})
    assert listed.code == 0 and "lstm-tagger" in [a["name"] for a in listed.json()["architectures"]]
    refused = run_zoo("run", "elman-rnn", env={"ZOO_RUN_DATA": "x.txt"})
    assert refused.code == 2 and "--data: dataset 'sine-cosine' is built in" in refused.error_line()


# ------------------------------------------------------- (i) predict --input, blank lines
INPUTS = {
    "char-pairs": ["hello", "olleh", "hel"],
    "tagger": ["The dog barks .", "A cat sleeps", "dogs"],
}


@pytest.mark.parametrize("kind", ["char-pairs", "tagger"])
def test_predict_input_keeps_blank_lines_aligned(
    kind: str, models: dict[str, Path], zoo, tmp_path: Path
) -> None:
    a, b, c = INPUTS[kind]
    lines = ["", a, "", "", b, "   ", c, ""]
    source = write(tmp_path, "in.txt", "\n".join(lines) + "\n")
    result = zoo("predict", models[kind], "--input", source)
    assert result.code == 0, result.stderr
    out = result.stdout.split("\n")
    assert out[-1] == ""  # ends with a newline
    out = out[:-1]
    assert len(out) == len(lines)
    for line, got in zip(lines, out):
        if not line.strip():
            assert got.strip() == ""
        else:
            alone = zoo("predict", models[kind], line)
            assert alone.code == 0, alone.stderr
            assert got + "\n" == alone.stdout


def test_predict_input_to_an_output_file(models: dict[str, Path], zoo, tmp_path: Path) -> None:
    source = write(tmp_path, "in.txt", "hello\n\nhel\n")
    shown = zoo("predict", models["char-pairs"], "--input", source)
    written = zoo("predict", models["char-pairs"], "--input", source, "--output", "out.txt")
    assert written.code == 0, written.stderr
    assert written.stdout == ""
    assert (tmp_path / "out.txt").read_text() == shown.stdout
    assert json.loads(zoo("predict", models["char-pairs"], "hello", "--json").stdout)["predictions"]
