"""Every column a tagger learnt: `zoo predict` fills UPOS, XPOS and FEATS from the auxiliary
output layers (DEPREL never), `zoo eval` scores each column as the CoNLL 2018 script does, and
`zoo export` carries their scores and vocabularies to the runtime."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from zoo_plugins.lstm_tagger import conllu
from zoo_plugins.lstm_tagger.data import input_encoder

import zoo
from tests.conftest import SHARED_DATA
from tests.plugins.lstm_tagger.test_conllu import SAMPLE, write
from zoo.toolkit.textfile import read_text

EWT = SHARED_DATA / "ud-english-ewt"
SCRIPT = SHARED_DATA.parent / "tools" / "conll18_ud_eval.py"
needs_script = pytest.mark.skipif(
    not SCRIPT.is_file(), reason=f"{SCRIPT} is absent (no shared tools)"
)
needs_ewt_and_script = pytest.mark.skipif(
    not (EWT.is_dir() and SCRIPT.is_file()),
    reason=f"{EWT} or {SCRIPT} is absent (no shared data)",
)

# SAMPLE with FEATS on the words that have them in English treebanks.
FEATS = {
    "\tPRP\t_": "\tPRP\tCase=Nom|Number=Sing|Person=1|PronType=Prs",
    "\tMD\t_": "\tMD\tVerbForm=Fin",
    "\tVB\t_": "\tVB\tVerbForm=Inf",
    "\tNNS\t_": "\tNNS\tNumber=Plur",
    "\tVBP\t_": "\tVBP\tMood=Ind|Tense=Pres|VerbForm=Fin",
}
TREEBANK = SAMPLE
for _plain, _with_feats in FEATS.items():
    TREEBANK = TREEBANK.replace(_plain, _with_feats)
GOLD = {  # the gold UPOS, XPOS, FEATS of TREEBANK's words, which the model learns by heart
    "I": ("PRON", "PRP", "Case=Nom|Number=Sing|Person=1|PronType=Prs"),
    "ca": ("AUX", "MD", "VerbForm=Fin"),
    "go": ("VERB", "VB", "VerbForm=Inf"),
    ".": ("PUNCT", ".", "_"),
    "Dogs": ("NOUN", "NNS", "Number=Plur"),
    "bark": ("VERB", "VBP", "Mood=Ind|Tense=Pres|VerbForm=Fin"),
}
WORDS = ["I", "ca", "go", ".", "Dogs", "bark"]  # TREEBANK's words, in order
SMALL = {"hidden_size": 32, "embedding_dim": 16, "char_hidden": 16, "num_layers": 1}


@pytest.fixture(scope="module")
def columns_model(tmp_path_factory):
    """A tagger trained with the recipe's auxiliary columns (XPOS, FEATS, DEPREL)."""
    folder = tmp_path_factory.mktemp("columns")
    train = write(folder, TREEBANK * 3, "train.conllu")
    path = folder / "tagger.safetensors"
    zoo.run("lstm-tagger", "conllu", train, out=path, epochs=40, lr=0.01, threads=1, **SMALL)
    assert zoo.load(path).state["aux_tags"].keys() == {"xpos", "feats", "deprel"}
    return path


def word_lines(text: str) -> list[list[str]]:
    """The columns of each word line (IDs 1, 2, ...; not ranges, not empty nodes)."""
    rows = [line.split("\t") for line in text.split("\n")]
    return [cols for cols in rows if len(cols) == 10 and cols[0].isdigit()]


# ------------------------------------------------------------------------------- CoNLL-U
def test_universal_feats_keep_only_universal_features_sorted():
    assert conllu.universal_feats("Number=Sing|Typo=Yes") == "Number=Sing"
    assert conllu.universal_feats("Tense=Past|Mood=Ind") == "Mood=Ind|Tense=Past"
    assert conllu.universal_feats("_") == conllu.universal_feats("NumForm=Digit") == ""


@needs_script
def test_the_universal_features_are_the_scripts():
    spec = importlib.util.spec_from_file_location("conll18_ud_eval", SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert set(script.UNIVERSAL_FEATURES) == conllu.UNIVERSAL_FEATURES


def test_with_columns_replaces_the_named_columns_only(tmp_path):
    file = read_text(write(tmp_path, TREEBANK))
    sentences = conllu.parse(file.text, file.path)
    values = {"xpos": [["a", "b", "c", "d"], ["e", "f"]], "feats": [["1"] * 4, ["2"] * 2]}
    out = conllu.with_columns(file, sentences, values)
    before, after = word_lines(TREEBANK), word_lines(out)
    assert [cols[4] for cols in after] == ["a", "b", "c", "d", "e", "f"]
    assert [cols[5] for cols in after] == ["1"] * 4 + ["2"] * 2
    assert [c[:4] + c[6:] for c in before] == [c[:4] + c[6:] for c in after]
    assert out.count("\n") == TREEBANK.count("\n") and "\t_\t_\r\n" in out


# ------------------------------------------------------------------------------- predict
def assert_only_columns_changed(before: str, after: str, columns: set[int]) -> None:
    """`after` is `before` line for line, byte for byte, but for those columns of word lines."""
    old_lines, new_lines = before.split("\n"), after.split("\n")
    assert len(old_lines) == len(new_lines)
    for old, new in zip(old_lines, new_lines):
        a, b = old.split("\t"), new.split("\t")
        if len(a) == 10 and a[0].isdigit():
            assert [v for i, v in enumerate(a) if i not in columns] == [
                v for i, v in enumerate(b) if i not in columns
            ]
        else:
            assert old == new  # comments, blank lines, the 3-4 and 4.1 lines


def test_predict_fills_upos_xpos_feats_and_keeps_deprel(zoo, tmp_path, columns_model):
    # blanks and wrong values in the columns to fill; a DEPREL the model never saw
    source = TREEBANK.replace("\tPRON\tPRP\t", "\t_\t_\t").replace("\tNumber=Plur\t", "\tX=Y\t")
    source = source.replace("\tnsubj\t", "\tdep\t")
    src = write(tmp_path, source, "in.conllu")
    r = zoo("predict", columns_model, "--input", src, "--output", "out.conllu", "--json")
    assert r.code == 0, r.stderr
    out = (tmp_path / "out.conllu").read_bytes().decode()  # \r\n kept
    assert [tuple(cols[3:6]) for cols in word_lines(out)] == [GOLD[w] for w in WORDS]
    assert_only_columns_changed(source, out, {3, 4, 5})  # DEPREL "dep" kept
    assert "\tdep\t" in out and out.endswith("\n\n")
    first = r.json()["predictions"][0]
    assert first["columns"] == {
        "upos": ["PRON", "AUX", "VERB", "PUNCT"],
        "xpos": ["PRP", "MD", "VB", "."],
        "feats": [GOLD[w][2] for w in ("I", "ca", "go", ".")],
    }
    assert first["output"] == [[w, GOLD[w][0]] for w in ("I", "ca", "go", ".")]


def test_keep_gold_keeps_the_files_values_of_those_columns(zoo, tmp_path, columns_model):
    source = TREEBANK.replace("\tNNS\tNumber=Plur\t", "\tNN\tNumber=Sing\t")
    source = source.replace("\tNOUN\t", "\tPROPN\t")
    src = write(tmp_path, source, "in.conllu")
    keep = ("--set", "keep_gold=xpos, feats")  # spaces after commas are fine
    r = zoo("predict", columns_model, "--input", src, "--output", "o.conllu", *keep, "--json")
    assert r.code == 0, r.stderr
    out = (tmp_path / "o.conllu").read_bytes().decode()
    assert_only_columns_changed(source, out, {3})
    assert [cols[3] for cols in word_lines(out)] == [GOLD[w][0] for w in WORDS]  # NOUN again
    assert "\tNOUN\tNN\tNumber=Sing\t" in out
    dogs = r.json()["predictions"][1]  # the predictions are the model's all the same
    assert dogs["columns"]["xpos"] == ["NNS", "VBP"]


def test_keep_gold_names_only_columns_predict_fills(zoo, tmp_path, columns_model):
    src = write(tmp_path, TREEBANK, "in.conllu")
    r = zoo("predict", columns_model, "--input", src, "--set", "keep_gold=xpos,deprel")
    assert r.code == 2
    assert "keep_gold: 'deprel' is not a column zoo predict fills (upos, xpos, feats)" in (
        r.error_line()
    )


def test_plain_text_shows_every_column_predicted(zoo, columns_model):
    r = zoo("predict", columns_model, "Dogs bark", "I ca go .")
    assert r.code == 0, r.stderr
    assert r.stdout.splitlines() == [
        "Dogs/NOUN/NNS/Number=Plur bark/VERB/VBP/Mood=Ind|Tense=Pres|VerbForm=Fin",
        "I/PRON/PRP/Case=Nom|Number=Sing|Person=1|PronType=Prs ca/AUX/MD/VerbForm=Fin "
        "go/VERB/VB/VerbForm=Inf ./PUNCT/./_",
    ]
    (dogs,) = zoo("predict", columns_model, "Dogs bark", "--json").json()["predictions"]
    assert dogs["output"] == [["Dogs", "NOUN"], ["bark", "VERB"]]
    assert dogs["columns"] == {
        "upos": ["NOUN", "VERB"],
        "xpos": ["NNS", "VBP"],
        "feats": ["Number=Plur", "Mood=Ind|Tense=Pres|VerbForm=Fin"],
    }


def test_the_columns_follow_the_learnt_heads(tmp_path):
    """An XPOS tagger learning UPOS beside predicts both, in file order; without output
    layers (aux_weight=0) a tagger predicts its tag column alone, as a plain one."""
    train = write(tmp_path, TREEBANK, "train.conllu")
    xpos = zoo.create(
        "lstm-tagger", dataset="conllu", data=train, column="xpos", aux_columns="upos,feats"
    )
    assert xpos.module.predicted_columns() == ["upos", "xpos", "feats"]
    assert list(zoo.predict(xpos, ["Dogs bark"])[0]["columns"]) == ["upos", "xpos", "feats"]
    assert {"upos_accuracy", "feats_accuracy", "alltags_accuracy"} <= set(zoo.evaluate(xpos, train))
    plain = zoo.create("lstm-tagger", dataset="conllu", data=train, aux_weight=0)
    assert plain.module.predicted_columns() == ["upos"]
    assert "columns" not in zoo.predict(plain, ["Dogs bark"])[0]
    assert not any(k.endswith("_accuracy") and "known" not in k for k in zoo.evaluate(plain, train))


# ---------------------------------------------------------------------------------- eval
def test_eval_scores_each_learnt_column(tmp_path, columns_model):
    metrics = zoo.evaluate(columns_model, write(tmp_path, TREEBANK, "gold.conllu"))
    scored = [k for k in metrics if k.endswith("_accuracy") and "known" not in k]
    assert scored == ["xpos_accuracy", "feats_accuracy", "deprel_accuracy", "alltags_accuracy"]
    assert all(metrics[k] == 1.0 for k in scored)
    # an XPOS the model never saw and a FEATS none of its values matches: wrong; a FEATS
    # that differs in a feature the CoNLL 2018 script ignores (Typo): right, as there
    gold = TREEBANK.replace("\tNNS\tNumber=Plur\t", "\tNN\tNumber=Sing\t")
    gold = gold.replace("Tense=Pres|VerbForm=Fin\t", "Tense=Pres|Typo=Yes|VerbForm=Fin\t")
    metrics = zoo.evaluate(columns_model, write(tmp_path, gold, "other.conllu"))
    assert metrics["accuracy"] == 1.0 and metrics["words"] == 6
    assert metrics["xpos_accuracy"] == metrics["feats_accuracy"] == pytest.approx(5 / 6)
    assert metrics["alltags_accuracy"] == pytest.approx(5 / 6)  # the same word wrong twice


def test_eval_text_lists_the_columns(zoo, tmp_path, columns_model):
    r = zoo("eval", columns_model, "--data", write(tmp_path, TREEBANK, "gold.conllu"))
    assert r.code == 0, r.stderr
    for key in ("xpos_accuracy", "feats_accuracy", "alltags_accuracy"):
        assert re.search(rf"^\s+{key}\s+1(\.0+)?$", r.stdout, re.MULTILINE), r.stdout


@pytest.mark.slow
@needs_ewt_and_script
def test_eval_equals_the_conll18_script_on_ewt(zoo, tmp_path):
    """A small EWT tagger's `zoo eval` figures are those of the official CoNLL 2018 script
    run on what `zoo predict` wrote (gold tokens: precision = recall = F1 = accuracy)."""
    train = write(tmp_path, first_sentences(EWT / "en_ewt-ud-train.conllu", 300), "train.conllu")
    dev = write(tmp_path, first_sentences(EWT / "en_ewt-ud-dev.conllu", 150), "dev.conllu")
    assert re.search(r"\t(\w+\|)*(Typo|NumForm|ExtPos)=", dev.read_text()), "nothing to filter"
    model = tmp_path / "m.safetensors"
    settings = [f"--set={k}={v}" for k, v in SMALL.items()]
    run = ["--dataset", "conllu", "--data", train, "--epochs", "6", "--batch-size", "16"]
    run += ["--lr", "0.01", "--threads", "1"]  # a second or two: UPOS about 60% on dev
    r = zoo("run", "lstm-tagger", *run, *settings, "--out", model)
    assert r.code == 0, r.stderr
    r = zoo("predict", model, "--input", dev, "--output", tmp_path / "system.conllu")
    assert r.code == 0, r.stderr
    r = zoo("eval", model, "--data", dev, "--json")
    assert r.code == 0, r.stderr
    ours = r.json()["metrics"]
    theirs = official_scores(dev, tmp_path / "system.conllu")
    assert theirs["Words"] == "100.00" and 0 < float(theirs["AllTags"]) < float(theirs["UPOS"])
    names = {
        "UPOS": "accuracy",
        "XPOS": "xpos_accuracy",
        "UFeats": "feats_accuracy",
        "AllTags": "alltags_accuracy",
    }
    assert {m: f"{100 * ours[k]:.2f}" for m, k in names.items()} == {m: theirs[m] for m in names}


def first_sentences(path, count: int) -> str:
    """The first `count` sentences of a CoNLL-U file, as written there."""
    text = path.read_text(encoding="utf-8")
    return "".join(s + "\n\n" for s in text.split("\n\n")[:count])


def official_scores(gold, system) -> dict[str, str]:
    """`conll18_ud_eval.py -v GOLD SYSTEM`: each metric's F1, as the script prints it."""
    p = subprocess.run(
        [sys.executable, str(SCRIPT), "-v", str(gold), str(system)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = [line.split("|") for line in p.stdout.splitlines() if line.count("|") == 4]
    return {cols[0].strip(): cols[3].strip() for cols in rows}


# -------------------------------------------------------------------------------- export
def test_export_gives_each_columns_scores_and_vocabulary(tmp_path, columns_model):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from zoo.features.export import export_onnx

    out = export_onnx(zoo.load(columns_model), tmp_path / "m.onnx")
    assert out["graphs"]["model"]["outputs"] == ["scores", "xpos_scores", "feats_scores"]
    assert out["max_difference"] <= 1e-5  # torch and onnxruntime agree on every output
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    metadata = session.get_modelmeta().custom_metadata_map
    settings = json.loads(metadata["runtime"])["settings"]
    state = json.loads(metadata["data_state"])
    assert settings["column"] == "upos"
    assert settings["columns"] == [
        {"column": "upos", "output": "scores"},
        {"column": "xpos", "output": "xpos_scores"},
        {"column": "feats", "output": "feats_scores"},
    ]
    sentences = [["Dogs", "bark"], ["I", "ca", "go", "."]]
    feeds = input_encoder(state, chars=True)(sentences)
    wanted = [i.name for i in session.get_inputs()]
    scores = session.run(None, {k: v.numpy() for k, v in feeds.items() if k in wanted})
    decoded = {}
    for entry, array in zip(settings["columns"], scores):
        name = entry["column"]
        tags = state["tags"] if name == settings["column"] else state["aux_tags"][name]
        best = np.argmax(array, axis=-1)
        decoded[name] = [[tags[i] for i in best[k, : len(ws)]] for k, ws in enumerate(sentences)]
    predicted = zoo.predict(columns_model, [" ".join(ws) for ws in sentences])
    assert [{n: decoded[n][k] for n in decoded} for k in range(2)] == [
        p["columns"] for p in predicted
    ]
