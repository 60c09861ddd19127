"""`zoo card`: a Hugging Face style model card from a model file's metadata, without torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import CSV_SMALL, SERIES, write


@pytest.fixture(scope="module")
def forecaster(tmp_path_factory):
    """A forecaster trained for one epoch on a CSV: test metrics with a repeat-last baseline."""
    import zoo

    folder = tmp_path_factory.mktemp("card")
    series = write(folder, "series.csv", SERIES)
    path = folder / "fc.safetensors"
    zoo.run("gru-regressor", "csv", series, out=path, epochs=1, hidden_size=4, **CSV_SMALL)
    return path


def front_matter(text: str) -> dict[str, list[str]]:
    """The YAML front matter's top-level keys and their lines (enough to check its shape)."""
    lines = text.splitlines()
    assert lines[0] == "---", lines[:2]
    end = lines.index("---", 1)
    out: dict[str, list[str]] = {}
    key = ""
    for line in lines[1:end]:
        if not line.startswith((" ", "-")):
            key, _, value = line.partition(":")
            out[key] = [value.strip()] if value.strip() else []
        else:
            out[key].append(line)
    return out


def test_card_of_a_trained_model(zoo, forecaster):
    r = zoo("card", forecaster)
    assert r.code == 0, r.stderr
    meta = front_matter(r.stdout)
    assert meta["library_name"] == ["rnn-zoo"] and '- "csv"' in meta["datasets"]
    assert '- "mse"' in meta["metrics"] and '- "gru-regressor"' in meta["tags"]
    assert any('{type: "mse", value: ' in line for line in meta["model-index"])
    body = r.stdout.split("\n---\n", 1)[1]
    for heading in (
        "## Data",
        "## Settings",
        "## Training",
        "## Evaluation",
        "## Known limits",
        "## How to use",
    ):
        assert heading in body
    assert "| repeat_last |" in body and "| this model |" in body  # the baseline beside it
    assert 'load_file("fc.safetensors")' in body and "zoo-runtime fc.onnx" in body
    assert "| input_length | `4` |" in body


def test_the_onnx_tag_only_where_an_export_is_beside_the_file(zoo, forecaster, tmp_path):
    """A card's tags say which formats the folder holds: `onnx` once `zoo export` has
    written the .onnx file beside the model, not before."""
    model = tmp_path / "fc.safetensors"
    model.write_bytes(forecaster.read_bytes())
    before = front_matter(zoo("card", model).stdout)["tags"]
    assert '- "safetensors"' in before and '- "onnx"' not in before
    assert zoo("export", model).code == 0 and (tmp_path / "fc.onnx").is_file()
    assert '- "onnx"' in front_matter(zoo("card", model).stdout)["tags"]


def test_card_to_a_file_and_errors(zoo, forecaster, tmp_path):
    r = zoo("card", forecaster, "--out", "README.md")
    assert r.code == 0 and (tmp_path / "README.md").read_text().startswith("---\nlibrary_name")
    damaged = tmp_path / "bad.safetensors"
    damaged.write_bytes(forecaster.read_bytes()[:-10])
    assert zoo("card", damaged).error_line() == zoo("inspect", damaged).error_line()
    r = zoo("card", forecaster, "--out", str(tmp_path))
    assert r.code == 2 and "is a directory" in r.error_line()


def test_an_untrained_model_says_so(zoo, tmp_path):
    import zoo as zoo_api

    zoo_api.create("elman-rnn", "char-pairs").save(tmp_path / "e.safetensors")
    r = zoo("card", tmp_path / "e.safetensors")
    assert r.code == 0 and "records no training run" in r.stdout
    assert "## Evaluation" not in r.stdout


@pytest.mark.slow
def test_card_does_not_import_torch(forecaster):
    probe = (
        "import sys\nfrom zoo.cli import cli\ntry:\n"
        f"    cli.main(args=['card', {json.dumps(str(forecaster))}], prog_name='zoo')\n"
        "except SystemExit:\n    pass\nprint('torch' in sys.modules, file=sys.stderr)"
    )
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert p.stderr.strip().endswith("False") and p.stdout.startswith("---"), p.stderr
