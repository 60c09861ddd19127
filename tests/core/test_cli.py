"""The `zoo` command line: every command, `--json`, and clear one-line errors with exit codes."""

from __future__ import annotations

import json

import pytest
import torch

import zoo as zoo_pkg

ARCHS = ("elman-rnn", "gru-regressor", "lstm-tagger", "rnn-seq2seq")
QUICK = {
    "elman-rnn": ["--epochs", "2"],
    "gru-regressor": ["--epochs", "1", "--set", "num_windows=200"],
    "lstm-tagger": ["--epochs", "2"],
    "rnn-seq2seq": ["--epochs", "2"],
}


def test_help_and_version(zoo):
    r = zoo("--help")
    assert r.code == 0
    for command in ("list", "info", "run", "predict", "eval", "plugins", "inspect"):
        assert command in r.stdout
    assert zoo("--version").stdout.strip() == f"zoo, version {zoo_version()}"


def zoo_version():
    return zoo_pkg.__version__


def test_list_shows_each_architecture_with_plugin_and_default_dataset(zoo):
    r = zoo("list")
    assert r.code == 0
    lines = {
        line.split()[0]: line
        for line in r.stdout.splitlines()
        if line.startswith("  ") and line.split()
    }
    for name, dataset in [
        ("elman-rnn", "sine-cosine"),
        ("gru-regressor", "sine-windows"),
        ("lstm-tagger", "toy-tags"),
        ("rnn-seq2seq", "word-pairs"),
    ]:
        assert dataset in lines[name] and f"rnn-zoo {zoo_version()}" in lines[name]
    assert "char-pairs" in lines and "toy-tags" in lines


def test_list_json_and_filters(zoo):
    doc = zoo("list", "--json").json()
    archs = {a["name"]: a for a in doc["architectures"]}
    assert set(ARCHS) <= set(archs)
    assert archs["lstm-tagger"]["distribution"] == "rnn-zoo" and archs["lstm-tagger"]["tasks"] == [
        "tagging"
    ]
    assert archs["lstm-tagger"]["description"]
    assert {d["name"] for d in doc["datasets"]} >= {
        "toy-tags",
        "word-pairs",
        "sine-windows",
        "sine-cosine",
        "char-pairs",
    }
    doc = zoo("list", "*regress*", "--json").json()
    assert [a["name"] for a in doc["architectures"]] == ["gru-regressor"]
    doc = zoo("list", "--task", "tagging", "--json").json()
    assert [a["name"] for a in doc["architectures"]] == ["lstm-tagger"]


def test_info_lists_settings_datasets_and_parameter_count(zoo):
    r = zoo("info", "lstm-tagger")
    assert r.code == 0
    assert "hidden_size" in r.stdout and "LSTM hidden units per direction" in r.stdout
    doc = zoo("info", "lstm-tagger", "--json").json()["architecture"]
    fields = {f["name"]: f for f in doc["settings"]}
    assert fields["hidden_size"]["type"] == "int" and fields["hidden_size"]["default"] == 64
    assert fields["bidirectional"]["type"] == "bool"
    assert doc["default_dataset"] == "toy-tags" and "toy-tags" in doc["compatible_datasets"]
    assert doc["parameters"] == zoo_pkg.create("lstm-tagger").num_parameters() > 0
    train = {f["name"]: f["default"] for f in doc["training"]}
    assert train["epochs"] == 80 and train["batch_size"] == 8  # resolved for toy-tags


def test_info_on_a_dataset(zoo):
    doc = zoo("info", "word-pairs", "--json").json()
    assert doc["dataset"]["task"] == "seq2seq" and "rnn-seq2seq" in doc["dataset"]["architectures"]
    assert "path" in {f["name"] for f in doc["dataset"]["settings"]}


def assert_same_metrics(got: dict, expected: dict) -> None:
    """Equal metrics: numbers up to rounding, a confusion matrix exactly."""
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, dict):
            assert got[key] == value, key
        else:
            assert got[key] == pytest.approx(value), key


@pytest.mark.parametrize("name", ARCHS)
def test_run_predict_eval_inspect_each_builtin(zoo, name, tmp_path):
    out = tmp_path / f"{name}.safetensors"
    r = zoo("run", name, *QUICK[name], "--out", out, "--json")
    assert r.code == 0, r.stderr
    doc = r.json()  # stdout is exactly one JSON document
    assert doc["architecture"] == name and doc["path"] == str(out) and out.exists()
    assert doc["training"]["threads"] == 1 and doc["training"]["steps"] > 0
    assert doc["metrics"], doc
    assert "epoch" in r.stderr  # progress went to stderr
    split = next(iter(doc["metrics"]))

    e = zoo("eval", out, "--split", split, "--json")
    assert e.code == 0, e.stderr
    assert_same_metrics(e.json()["metrics"], doc["metrics"][split])

    i = zoo("inspect", out, "--json")
    assert i.json()["architecture"] == name and i.json()["config"] == doc["settings"]["model"]

    sample = {
        "elman-rnn": ["0.1", "-0.2", "0.3"],
        "gru-regressor": [str(v / 10) for v in range(10)],
        "lstm-tagger": ["The dog ate the apple"],
        "rnn-seq2seq": ["hello", "cat"],
    }[name]
    p = zoo("predict", out, *sample, "--json")
    assert p.code == 0, p.stderr
    predictions = p.json()["predictions"]
    assert predictions and all("output" in x and "text" in x for x in predictions)
    plain = zoo("predict", out, *sample)
    assert plain.stdout.splitlines() == [x["text"] for x in predictions]


def test_predict_reads_and_writes_files(zoo, tmp_path):
    model = tmp_path / "s2s.safetensors"
    assert zoo("run", "rnn-seq2seq", "--epochs", "1", "-q", "--out", model).code == 0
    src = tmp_path / "in.txt"
    src.write_text("hello\ncat\ngood\n")
    out = tmp_path / "out.txt"
    r = zoo("predict", model, "--input", src, "--output", out, "--batch-size", "2")
    assert r.code == 0, r.stderr
    assert len(out.read_text().splitlines()) == 3
    assert out.read_text() == zoo("predict", model, "hello", "cat", "good").stdout


def test_negative_numbers_are_inputs_not_options(zoo, tmp_path):
    model = tmp_path / "e.safetensors"
    assert zoo("run", "elman-rnn", "--epochs", "1", "-q", "--out", model).code == 0
    r = zoo("predict", model, "-0.5", "-1e-1", "0.3")
    assert r.code == 0, r.stderr
    assert len(r.stdout.split()) == 3


def test_plugins_lists_versions_and_hooks(zoo):
    doc = zoo("plugins", "--json").json()
    by_name = {p["name"]: p for p in doc["plugins"]}
    assert {"elman-rnn", "lstm-tagger", "gru-regressor", "rnn-seq2seq"} <= set(by_name)
    assert by_name["lstm-tagger"]["version"] == zoo_version()
    assert set(by_name["lstm-tagger"]["hooks"]) == {"register_architectures", "register_datasets"}
    assert "toy-tags" in by_name["lstm-tagger"]["datasets"]
    assert zoo("plugins").code == 0


# ---------------------------------------------------------------------------- user mistakes
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["run", "lstm-tager"],
            2,
            "unknown architecture 'lstm-tager' (did you mean 'lstm-tagger'?)",
        ),
        (["run", "lstm-tagger", "--dataset", "toy-tag"], 2, "did you mean 'toy-tags'"),
        (["info", "nothing-like-it"], 2, "unknown architecture 'nothing-like-it'"),
        (
            ["run", "lstm-tagger", "--set", "hiden_size=3"],
            2,
            "Error: --set unknown setting 'hiden_size' (did you mean 'hidden_size'",
        ),
        (
            ["run", "lstm-tagger", "--set", "hidden_size=big"],
            2,
            "Error: --set hidden_size='big' is not valid; expected int",
        ),
        (
            ["run", "lstm-tagger", "--set", "hidden_size=-1"],
            2,
            "Error: --set hidden_size=-1 is below its minimum 1",
        ),
        (["run", "lstm-tagger", "--set", "hidden_size"], 2, "expected KEY=VALUE"),
        (
            ["run", "lstm-tagger", "--set", "bidirectional=perhaps"],
            2,
            "Error: --set bidirectional='perhaps' is not valid; expected bool",
        ),
        (
            ["run", "lstm-tagger", "--dataset", "sine-cosine"],
            2,
            "cannot train on dataset 'sine-cosine'",
        ),
        (
            ["run", "lstm-tagger", "--data", "x.txt"],
            2,
            "dataset 'toy-tags' is built in and reads no files",
        ),
        (
            ["run", "lstm-tagger", "--out", "no/such/folder/m.safetensors"],
            2,
            "folder 'no/such/folder' does not exist",
        ),
        (["run", "rnn-seq2seq", "--data", "missing.tsv"], 1, "missing.tsv: no such file"),
        (
            ["run", "gru-regressor", "--dataset", "csv", "--dev", "d.csv"],
            2,
            "--dev: dataset 'csv' takes no --dev",
        ),
        (
            ["run", "elman-rnn", "--test", "t.txt"],
            2,
            "--test: dataset 'sine-cosine' takes no --test",
        ),
        (["predict", "missing.safetensors", "x"], 1, "missing.safetensors: no such model file"),
        (["eval", "missing.safetensors"], 1, "no such model file"),
        (["inspect", "missing.safetensors"], 1, "no such model file"),
    ],
)
def test_mistakes_get_one_clear_line_and_the_right_exit_code(zoo, args, code, message):
    r = zoo(*args)
    assert r.code == code, (r.stdout, r.stderr)
    assert message in r.error_line()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_is_a_usage_error(zoo):
    r = zoo("run", "elman-rnn", "--device", "cuda")
    assert r.code == 2
    assert "no CUDA GPU is available" in r.error_line()


def test_malformed_data_file_names_file_and_line(zoo, tmp_path):
    bad = tmp_path / "pairs.tsv"
    bad.write_text("hello\thola\nno tab here\n")
    r = zoo("run", "rnn-seq2seq", "--data", bad)
    assert r.code == 1
    assert f"{bad}:2: expected 'source<TAB>target'" in r.error_line()
    bad.write_bytes(b"\xff\xfe\x00bad")
    r = zoo("run", "rnn-seq2seq", "--data", bad)
    assert r.code == 1 and "not UTF-8 text" in r.error_line()
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    r = zoo("run", "rnn-seq2seq", "--data", empty)
    assert r.code == 1 and "no pairs found" in r.error_line()


def test_predict_mistakes(zoo, tmp_path):
    model = tmp_path / "g.safetensors"
    assert (
        zoo(
            "run", "gru-regressor", "--epochs", "1", "--set", "num_windows=50", "-q", "--out", model
        ).code
        == 0
    )
    r = zoo("predict", model, "1", "2", "x")
    assert r.code == 2 and "'x' is not a number" in r.error_line()
    r = zoo("predict", model, "1", "2")
    assert r.code == 2 and "expected a window of 10 values" in r.error_line()
    r = zoo("predict", model)
    assert r.code == 2 and "give INPUT arguments or --input FILE" in r.error_line()
    windows = tmp_path / "windows.txt"
    windows.write_text(" ".join(str(v / 10) for v in range(10)) + "\n1 2\n")
    r = zoo("predict", model, "--input", windows)
    assert r.code == 2 and "expected a window of 10 values" in r.error_line()
    windows.write_text(" ".join(str(v / 10) for v in range(10)) + "\n\n" + "0.5 " * 10 + "\n")
    r = zoo("predict", model, "--input", windows)  # not a CSV model: one window a line
    assert r.code == 0 and len(r.stdout.splitlines()) == 3 and r.stdout.splitlines()[1] == ""
    r = zoo("predict", model, "1", "--set", "beam=3")
    assert r.code == 2 and "takes no predict options" in r.error_line()
    r = zoo("eval", model, "--split", "nope")
    assert r.code == 2
    assert r.error_line().startswith("Error: split 'nope': the data has no such examples; it has: ")
    not_model = tmp_path / "text.safetensors"
    not_model.write_text("just some text that is long enough")
    r = zoo("predict", not_model, "1")
    assert r.code == 1 and "not a safetensors model file" in r.error_line()


def test_failed_run_leaves_the_previous_model_file_alone(zoo, tmp_path):
    model = tmp_path / "m.safetensors"
    assert zoo("run", "elman-rnn", "--epochs", "1", "-q", "--out", model).code == 0
    before = model.read_bytes()
    r = zoo("run", "elman-rnn", "--epochs", "1", "--set", "hidden_size=oops", "--out", model)
    assert r.code == 2 and model.read_bytes() == before


def test_json_output_is_strict_json(zoo, tmp_path):
    r = zoo("run", "elman-rnn", "--epochs", "1", "--out", tmp_path / "m.safetensors", "--json")
    json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def test_metrics_out_writes_the_json_document(zoo, tmp_path):
    metrics = tmp_path / "metrics.json"
    model = tmp_path / "m.safetensors"
    r = zoo(
        "run",
        "elman-rnn",
        "--epochs",
        "1",
        "-q",
        "--out",
        model,
        "--metrics-out",
        metrics,
        "--json",
    )
    assert r.code == 0 and json.loads(metrics.read_text()) == r.json()
    r = zoo("eval", model, "--metrics-out", metrics)
    assert r.code == 0 and json.loads(metrics.read_text())["metrics"]["mse"] > 0
    r = zoo("eval", model, "--metrics-out", tmp_path / "no" / "m.json")
    assert r.code == 2 and "--metrics-out" in r.error_line()


def test_held_out_fractions_over_one_are_refused(zoo):
    """Each fraction may be up to 0.9, but together they must leave the parts disjoint."""
    r = zoo("run", "lstm-tagger", "--set", "valid_fraction=0.6", "--set", "test_fraction=0.5")
    assert r.code == 2
    assert r.error_line() == (
        "Error: valid_fraction + test_fraction = 1.1: expected at most 1 together"
    )
