"""A third party's plugin, shipped as its own package, works through the `zoo` command.

The example package in docs/example-plugin (`zoo-sentences`: a GRU sentence classifier, a TSV
dataset and an extra command) is made visible to `zoo` subprocesses exactly as an installed
package is, without installing anything: a temporary folder holds its `.dist-info` (METADATA
and entry_points.txt, what pip would write) and goes on PYTHONPATH with the package's source,
so importlib.metadata finds the `zoo` entry point. Then the plugin is listed, trained, saved,
loaded, evaluated and used for prediction, each time by the real command line.
"""

from __future__ import annotations

import ast
import io
import os
import random
import re
import tokenize

import pytest

from tests.conftest import REPO, run_zoo

SOURCE = REPO / "docs" / "example-plugin"
HOOKS = {"register_architectures", "register_datasets", "register_commands"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """PYTHONPATH for a `zoo` that sees zoo-sentences 1.0.0 as installed."""
    site = tmp_path_factory.mktemp("site")
    info = site / "zoo_sentences-1.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: zoo-sentences\nVersion: 1.0.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text("[zoo]\nsentences = zoo_sentences\n", encoding="utf-8")
    paths = [str(site), str(SOURCE), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def zoo(env, *args):
    return run_zoo(*args, env=env)


@pytest.fixture(scope="module")
def sample(env, tmp_path_factory):
    """The plugin's built-in sentences, written out by its own command."""
    path = tmp_path_factory.mktemp("sample") / "sample.tsv"
    r = zoo(env, "sentences-sample", path)
    assert r.code == 0, r.stderr
    return path


@pytest.fixture(scope="module")
def trained(env, tmp_path_factory):
    """(model file, `zoo run --json` document) of the classifier on its built-in data."""
    path = tmp_path_factory.mktemp("model") / "sentences.safetensors"
    r = zoo(env, "run", "gru-classifier", "--out", path, "--json", "-q")
    assert r.code == 0, r.stderr
    return path, r.json()


def test_plugins_and_list_credit_the_distribution(env):
    r = zoo(env, "plugins", "--json")
    assert r.code == 0, r.stderr
    plugin = {p["name"]: p for p in r.json()["plugins"]}["sentences"]
    assert plugin["distribution"] == "zoo-sentences" and plugin["version"] == "1.0.0"
    assert set(plugin["hooks"]) == HOOKS
    assert plugin["architectures"] == ["gru-classifier"]
    assert plugin["datasets"] == ["labelled-sentences"]

    r = zoo(env, "list", "--json")
    assert r.code == 0, r.stderr
    doc = r.json()
    arch = {a["name"]: a for a in doc["architectures"]}["gru-classifier"]
    data = {d["name"]: d for d in doc["datasets"]}["labelled-sentences"]
    for entry in (arch, data):
        assert (entry["distribution"], entry["version"]) == ("zoo-sentences", "1.0.0")
    assert arch["default_dataset"] == "labelled-sentences"
    assert data["task"] in arch["tasks"] and data["reads_files"]


def test_its_command_writes_the_built_in_sample(sample):
    assert sample.read_bytes() == (SOURCE / "zoo_sentences" / "sentences.tsv").read_bytes()
    lines = sample.read_text(encoding="utf-8").splitlines()
    labels = {line.split("\t")[1] for line in lines}
    assert len(lines) >= 50 and labels == {"positive", "negative"}


@pytest.mark.slow
def test_trains_to_a_real_accuracy(trained):
    _, doc = trained
    assert doc["architecture"] == "gru-classifier" and doc["dataset"] == "labelled-sentences"
    test = doc["metrics"]["test"]
    # The test split is 10% of 60 sentences: 5 of 6 right happens by chance one time in nine.
    assert test["accuracy"] >= 0.8, test
    assert set(test["confusion"]["labels"]) == {"positive", "negative"}


@pytest.mark.slow
def test_predicts_a_label_for_each_sentence(env, trained):
    model, _ = trained
    sentences = ["A wonderful and clever film .", "I hated this dull , silly film ."]
    r = zoo(env, "predict", model, *sentences, "--json")
    assert r.code == 0, r.stderr
    predictions = r.json()["predictions"]
    assert [p["input"] for p in predictions] == sentences
    assert [p["output"] for p in predictions] == ["positive", "negative"]
    assert all(0.5 <= p["probability"] <= 1 for p in predictions)


@pytest.fixture(scope="module")
def labelled(sample, tmp_path_factory):
    """The sample's lines shuffled: another file (another fingerprint), so evaluated whole."""
    lines = sample.read_text(encoding="utf-8").splitlines()
    random.Random(0).shuffle(lines)
    path = tmp_path_factory.mktemp("other") / "shuffled.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, [line.split("\t") for line in lines]


@pytest.fixture(scope="module")
def file_predictions(env, trained, labelled, tmp_path_factory):
    """`zoo predict --input` over the labelled texts with blank lines between some of them:
    (input lines, output lines, predictions)."""
    model, _ = trained
    _, rows = labelled
    lines = []
    for i, (text, _) in enumerate(rows):
        lines += [text, ""] if i % 7 == 3 else [text]
    folder = tmp_path_factory.mktemp("predict")
    inputs, output = folder / "inputs.txt", folder / "labels.txt"
    inputs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = zoo(env, "predict", model, "--input", inputs, "--output", output, "--json")
    assert r.code == 0, r.stderr
    return lines, output.read_text(encoding="utf-8").splitlines(), r.json()["predictions"]


@pytest.mark.slow
def test_predicts_a_file_line_by_line_keeping_blank_lines(file_predictions):
    lines, out, predictions = file_predictions
    assert len(out) == len(lines) and "" in lines
    for line, written in zip(lines, out):
        if not line:
            assert written == ""
            continue
        label, probability, text = written.split("\t")
        assert label in {"positive", "negative"} and 0.5 <= float(probability) <= 1
        assert text == line
    assert [p["input"] for p in predictions] == [line for line in lines if line]


@pytest.mark.slow
def test_eval_of_a_file_has_the_classification_metrics(env, trained, labelled, file_predictions):
    """`zoo eval --data` with the network run through zoo.cells (`--set impl=cells`) scores
    exactly what the torch-run predictions of the same file say."""
    model, _ = trained
    path, rows = labelled
    r = zoo(env, "eval", model, "--data", path, "--set", "impl=cells", "--json")
    assert r.code == 0, r.stderr
    metrics = r.json()["metrics"]
    assert metrics["accuracy"] >= 0.9, metrics  # mostly sentences it trained on
    assert {"f1/positive", "f1/negative", "precision/positive", "macro_f1"} <= set(metrics)
    labels = metrics["confusion"]["labels"]
    counts = [[0] * len(labels) for _ in labels]
    for (_, gold), prediction in zip(rows, file_predictions[2]):
        counts[labels.index(gold)][labels.index(prediction["output"])] += 1
    assert metrics["confusion"]["counts"] == counts
    assert metrics["accuracy"] == pytest.approx(
        sum(counts[i][i] for i in range(len(labels))) / len(rows)
    )


def code_lines(source: str) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    lines = set()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skip and token.type != tokenize.ENDMARKER:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstrings)


def test_the_plugin_is_small_and_the_guide_quotes_it_as_it_is():
    """The guide promises a realistic plugin in under 150 lines of code, and quotes it."""
    files = sorted((SOURCE / "zoo_sentences").glob("*.py"))
    sources = [path.read_text(encoding="utf-8") for path in files]
    assert sum(map(code_lines, sources)) <= 150
    guide = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", guide, flags=re.S)
    anchors = ("from typing", "@hookimpl", "@dataclass", "def read(", "@click.command")
    quoted = [block for block in blocks if block.startswith(anchors)]
    assert len(quoted) >= 5
    for block in quoted:
        assert any(block in source for source in sources), block


@pytest.mark.slow
def test_a_malformed_line_is_one_error_naming_file_and_line(env, tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("A great film .\tpositive\n\nno label on this line\n", encoding="utf-8")
    r = zoo(env, "run", "gru-classifier", "--data", bad, "-q", "--out", tmp_path / "m.safetensors")
    assert r.code == 1
    line = r.error_line()
    assert f"{bad}:3:" in line and "text<TAB>label" in line
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.slow
def test_the_unchanged_plugin_trains_on_two_processes(env, tmp_path):
    """Distributed training needs nothing from a plugin: two torchrun workers train the
    example classifier; rank 0 alone prints the result and writes the model."""
    out = tmp_path / "two.safetensors"
    r = zoo(env, "run", "gru-classifier", "--nproc-per-node", "2", "--epochs", "3", "--out", out, "--json", "-q")  # fmt: skip
    assert r.code == 0, r.stderr
    assert r.stdout.count('"architecture": "gru-classifier"') == 1, r.stdout
    assert r.json()["metrics"]["test"]["confusion"]["labels"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two.safetensors"]
