"""Auxiliary columns: a treebank's other columns (XPOS, FEATS, DEPREL, head distance) learnt
beside the tags through extra output layers, as training signal only."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from zoo_plugins.lstm_tagger import conllu
from zoo_plugins.lstm_tagger.data import encode, head_offset

import zoo
from tests.plugins.lstm_tagger.test_conllu import SAMPLE, write


def test_other_columns_are_read_as_written():
    sentences = conllu.parse(SAMPLE, "x.conllu", other_columns=("xpos", "deprel", "head"))
    first = sentences[0]
    assert first.words == ["I", "ca", "go", "."]  # the range and the empty node are not words
    assert first.other == {
        "xpos": ["PRP", "MD", "VB", "."],
        "deprel": ["nsubj", "aux", "root", "punct"],
        "head": ["3", "3", "0", "3"],
    }
    assert conllu.parse(SAMPLE, "x.conllu")[0].other == {}


@pytest.mark.parametrize(
    ("head", "position", "label"),
    [
        ("0", 3, "root"),
        ("3", 1, "+2"),
        ("1", 3, "-2"),
        ("40", 1, "+8"),
        ("1", 40, "-8"),
        ("_", 2, "_"),
        ("9" * 5000, 1, "+8"),
    ],
)
def test_the_head_column_becomes_a_clipped_distance(head, position, label):
    assert head_offset(head, position) == label


def aux_model(tmp_path, **settings):
    train = write(tmp_path, SAMPLE, "train.conllu")
    return zoo.create("lstm-tagger", dataset="conllu", data=train, epochs=1, **settings)


def test_each_column_gets_its_vocabulary_and_output_layer(tmp_path):
    model = aux_model(tmp_path, aux_columns="xpos,head", char_encoder="none")
    assert list(model.state["aux_tags"]) == ["xpos", "head"]
    assert set(model.state["aux_tags"]["xpos"]) == {"PRP", "MD", "VB", ".", "NNS", "VBP"}
    assert set(model.state["aux_tags"]["head"]) == {"+2", "+1", "root", "-1"}
    width = 2 * model.module.config.hidden_size  # the BiLSTM's output
    shapes = {k: tuple(v.shape) for k, v in model.module.state_dict().items() if "aux" in k}
    assert shapes == {
        "aux_out.xpos.weight": (6, width),
        "aux_out.xpos.bias": (6,),
        "aux_out.head.weight": (4, width),
        "aux_out.head.bias": (4,),
    }
    assert not hasattr(aux_model(tmp_path, aux_columns="xpos", aux_weight=0).module, "aux_out")


def test_the_loss_adds_each_column_weighted(tmp_path):
    """loss = tags' cross-entropy + aux_weight x each column's, on the same BiLSTM output;
    aux_weight=0 makes no output layers and the tags' loss alone."""
    model = aux_model(tmp_path, aux_columns="xpos,deprel", aux_weight=0.5, dropout=0.0)
    plain = aux_model(tmp_path, aux_columns="xpos", aux_weight=0, dropout=0.0).module.eval()
    net = model.module.eval()  # no dropout, no word dropout: the same output twice
    batch = model.data.collate(list(model.data.splits["train"]))
    assert batch["aux/xpos"].shape == batch["tags"].shape
    with torch.no_grad():
        hidden = net.batch_contexts(batch)
        tags_only = F.cross_entropy(
            net.out(hidden).flatten(0, 1), batch["tags"].flatten(), label_smoothing=0.1
        )
        expected = tags_only.clone()
        for name in ("xpos", "deprel"):
            scores = net.aux_out[name](hidden).flatten(0, 1)
            target = batch[f"aux/{name}"].flatten()
            expected += 0.5 * F.cross_entropy(scores, target, label_smoothing=0.1)
        assert float(net.loss(batch)) == pytest.approx(float(expected), rel=1e-6)
        assert float(plain.loss(batch)) == pytest.approx(float(tags_only), rel=1e-6)
    assert float(expected) > float(tags_only) + 1.0
    sentences = conllu.parse(SAMPLE, "dev.conllu", other_columns=("xpos", "deprel"))
    held_out = encode([(s.words, s.tags, s.other) for s in sentences], model.state, training=False)
    gold = model.data.collate(held_out)  # what evaluation scores each column against
    assert "aux/xpos" not in gold and gold["gold/xpos"].shape == gold["tags"].shape


def test_a_trained_file_evaluates_and_predicts_its_columns(tmp_path):
    train = write(tmp_path, SAMPLE, "train.conllu")
    out = tmp_path / "m.safetensors"
    zoo.run("lstm-tagger", "conllu", train, out=out, epochs=2, aux_columns="feats,head")
    with safe_open(str(out), "pt") as f:
        assert {"aux_out.feats.weight", "aux_out.head.weight"} <= set(f.keys())
    metrics = zoo.evaluate(out, train)
    assert metrics["words"] == 6 and {"feats_accuracy", "head_accuracy"} <= set(metrics)
    prediction = zoo.predict(out, ["Dogs bark"])[0]
    assert len(prediction["output"]) == 2 and list(prediction["columns"]) == ["upos", "feats"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("xpos,lemma", "'lemma' is not one of upos, xpos, feats, deprel, head"),
        ("xpos,xpos", "a column named twice"),
    ],
)
def test_bad_aux_columns_are_one_line_usage_errors(zoo, tmp_path, value, message):
    train = write(tmp_path, SAMPLE, "train.conllu")
    r = zoo(
        "run",
        "lstm-tagger",
        "--dataset",
        "conllu",
        "--data",
        train,
        "--set",
        f"aux_columns={value}",
    )
    assert r.code == 2 and message in r.error_line() and "aux_columns" in r.error_line()
    assert "Traceback" not in r.stderr


def test_the_tag_column_itself_is_not_an_extra_target(tmp_path):
    """The recipe's aux_columns name xpos; a tagger of the XPOS column skips it there."""
    model = aux_model(tmp_path, column="xpos", aux_columns="xpos,deprel")
    assert list(model.state["aux_tags"]) == ["deprel"] and "PRP" in model.state["tags"]
