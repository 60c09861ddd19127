"""One rule for outputs: no command writes to a path that is one of its inputs. Each case
here overwrote its input and exited 0 before zoo.core.fileio.refuse_input_as_output."""

from __future__ import annotations

import hashlib
import os

import pytest


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    import zoo

    folder = tmp_path_factory.mktemp("outputs")
    model = zoo.create("gru-regressor", "sine-windows", num_windows=40, hidden_size=8)
    path = folder / "g.safetensors"
    zoo.save(model, path)
    return path


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refused(result, option: str, path) -> None:
    line = result.error_line()
    assert result.code == 2, line
    assert line.startswith(f"Error: {option} ") and "is the same file as" in line, line
    assert os.path.basename(str(path)) in line


@pytest.mark.parametrize(
    "command",
    [
        ["card", "{M}", "--out", "{M}"],
        ["predict", "{M}", "1", "--output", "{M}"],
        ["predict", "{M}", "--input", "{I}", "--output", "{I}"],
        ["predict", "{M}", "--input", "{I}", "--output", "{LINK}"],  # a link to the input
        ["eval", "{M}", "--metrics-out", "{M}"],
        ["gates", "{M}", "1,2,3", "--out", "{M}"],
        ["plot", "curves", "{M}", "--out", "{M}"],
        ["export", "{M}", "--out", "{M}"],
    ],
    ids=["card", "predict", "predict-input", "predict-link", "eval", "gates", "plot", "export"],
)
def test_no_command_writes_over_its_input(zoo, model_file, tmp_path, command):
    inputs = tmp_path / "in.txt"
    inputs.write_text(" ".join(["0.1"] * 10) + "\n")
    link = tmp_path / "link.txt"
    link.symlink_to(inputs)
    model = model_file
    if command[0] in ("gates", "plot"):  # their output must be an image: so is this model
        model = tmp_path / "m.png"
        model.write_bytes(model_file.read_bytes())
    args = [
        a.replace("{M}", str(model)).replace("{I}", str(inputs)).replace("{LINK}", str(link))
        for a in command
    ]
    before = {p: _digest(p) for p in (model, inputs)}
    result = zoo(*args)
    option = next(a for a in args if a.startswith("--") and a != "--input")
    _refused(result, option, args[-1])
    assert {p: _digest(p) for p in (model, inputs)} == before


def test_run_refuses_metrics_out_on_its_model_and_its_data(zoo, tmp_path):
    model = tmp_path / "m.safetensors"
    common = ["run", "gru-regressor", "--epochs", "1", "--set", "num_windows=40", "-q"]
    _refused(zoo(*common, "--out", model, "--metrics-out", model), "--metrics-out", model)
    assert not model.exists()  # refused before any training
    data = tmp_path / "series.csv"
    data.write_text("value\n" + "\n".join(str(i % 7) for i in range(200)) + "\n")
    before = _digest(data)
    csv = ["run", "gru-regressor", "--dataset", "csv", "--data", data, "--epochs", "1", "-q"]
    _refused(zoo(*csv, "--out", data), "--out", data)
    _refused(zoo(*csv, "--out", model, "--metrics-out", data), "--metrics-out", data)
    assert _digest(data) == before


def test_the_api_refuses_a_prediction_file_over_its_input(model_file, tmp_path):
    import zoo
    from zoo.core.errors import UsageError

    inputs = tmp_path / "in.txt"
    inputs.write_text(" ".join(["0.1"] * 10) + "\n")
    model = zoo.load(model_file)
    with pytest.raises(UsageError, match="is the same file as input"):
        model.predict_file(inputs, output=inputs)
    assert inputs.read_text().startswith("0.1")
