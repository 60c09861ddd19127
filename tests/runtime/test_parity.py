"""The runtime answers as `zoo predict` does, from the .onnx file alone; the graphs' outputs
equal torch's within 1e-5 on inputs of other sizes than the ones traced."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import zoo_runtime

import zoo
import zoo.core.modelfile
from tests.conftest import CSV_SMALL, SERIES, write
from tests.runtime.conftest import SMALL_TAGGER, TREEBANK
from tests.runtime.test_side_by_side import run_runtime

SENTENCES = [
    "The dog ate the apple .",
    "Everybody read that book",
    "zyzzyva unknownword The",  # unseen words and characters
    "a",
    "The apple ate the dog and then the dog read a very long sentence about books",
]
TOLERANCE = 1e-5


@pytest.mark.parametrize(
    "settings",
    [
        {"char_encoder": "cnn"},
        {"char_encoder": "lstm", "num_layers": 2},
        {"char_encoder": "none", "bidirectional": False},
        {"char_encoder": "cnn", "impl": "cells"},
    ],
    ids=["cnn", "char-lstm-2-layers", "words-only", "cells"],
)
def test_tagger_tags_as_zoo_does(exported, settings):
    small = {"hidden_size": 8, "embedding_dim": 8, "char_dim": 4, "char_hidden": 6}
    path, onnx_path, doc = exported("lstm-tagger", "toy-tags", **small, **settings)
    want = zoo.predict(path, SENTENCES, batch_size=2)
    runtime = zoo_runtime.load(onnx_path)
    assert runtime.predict(SENTENCES, batch_size=2) == want
    assert runtime.predict(SENTENCES) == zoo.predict(path, SENTENCES)
    assert len({t for p in want for _, t in p["output"]}) > 1  # the answers vary
    assert doc["max_difference"] <= TOLERANCE


@pytest.mark.parametrize(
    "settings, outputs",
    [
        ({"char_encoder": "cnn"}, ["scores", "xpos_scores", "feats_scores"]),
        (  # the tag column XPOS, scored by the first output but second in file order
            {"column": "xpos", "aux_columns": "upos,feats", "char_encoder": "lstm"},
            ["scores", "upos_scores", "feats_scores"],
        ),
    ],
    ids=["upos-with-xpos-feats", "xpos-with-upos-feats"],
)
def test_tagger_fills_every_column_as_zoo_does(exported, tmp_path, settings, outputs):
    data = write(tmp_path, "train.conllu", TREEBANK)
    path, onnx_path, doc = exported(
        "lstm-tagger", "conllu", data=str(data), **SMALL_TAGGER, **settings
    )
    assert doc["graphs"]["model"]["outputs"] == outputs  # DEPREL, learnt too, is not predicted
    runtime = zoo_runtime.load(onnx_path)
    for options in ({"batch_size": 2}, {}):
        want = zoo.predict(path, SENTENCES, **options)
        got = runtime.predict(SENTENCES, **options)
        for g, w in zip(got, want, strict=True):
            assert list(w["columns"]) == ["upos", "xpos", "feats"]
            assert (g["output"], g["columns"], g["text"]) == (w["output"], w["columns"], w["text"])
        assert got == want
    main = settings.get("column", "upos")
    assert all(
        p["output"] == [[w, t] for w, t in zip(p["input"].split(), p["columns"][main])]
        for p in want
    )
    assert len({v for p in want for v in p["columns"]["feats"]}) > 1  # the answers vary
    assert runtime.tag([s.split() for s in SENTENCES], 3) == [p["columns"][main] for p in want]


def test_the_command_line_fills_every_column_as_zoo_does(kinds, zoo, tmp_path, monkeypatch, capsys):
    model, onnx_file = kinds["tagger-columns"]
    (tmp_path / "in.txt").write_text("\n".join(SENTENCES[:3]) + "\n\n  \n" + SENTENCES[4] + "\n")
    for args in (SENTENCES, ["--input", "in.txt"], [*SENTENCES[:2], "--set", "batch_size=1"]):
        want = zoo("predict", model, *args)
        got = run_runtime(monkeypatch, capsys, str(onnx_file), *args)
        assert want.code == got.code == 0, (want.stderr, got.stderr)
        assert got.stdout == want.stdout
        assert got.stdout.split("\n")[0].split(" ")[0].count("/") == 3  # word/UPOS/XPOS/FEATS
    want = zoo("predict", model, *SENTENCES, "--json")
    got = run_runtime(monkeypatch, capsys, str(onnx_file), *SENTENCES, "--json")
    assert json.loads(got.stdout)["predictions"] == json.loads(want.stdout)["predictions"]


def test_tagger_scores_match_torch_on_new_shapes(exported):
    path, onnx_path, _ = exported("lstm-tagger", "toy-tags", hidden_size=8, char_encoder="lstm")
    model, runtime = zoo.load(path), zoo_runtime.load(onnx_path)
    sentences = [s.split() for s in SENTENCES]  # 5 sentences, up to 16 words: not the traced 2x5
    feeds = runtime.feeds(sentences)
    got = runtime.run("model", feeds)[0]
    with torch.no_grad():
        want = model.module(
            *(torch.from_numpy(feeds[k]) for k in ("words", "lengths")),
            torch.from_numpy(feeds["chars"]),
            torch.from_numpy(feeds["char_lengths"]),
            torch.from_numpy(feeds["forms"]),
        ).numpy()
    real = np.arange(got.shape[1])[None, :] < feeds["lengths"][:, None]
    assert got.shape == want.shape
    assert np.abs(got - want)[real].max() <= TOLERANCE


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"members": 2, "decoder": "seq2seq", "patch_length": 3},
        {"decoder": "autoregressive", "window_norm": "revin", "linear_skip": True},
        {"window_norm": "last", "num_layers": 2, "patch_length": 2, "impl": "cells"},
    ],
    ids=["direct", "ensemble-seq2seq", "autoregressive-revin", "cells"],
)
def test_forecaster_forecasts_as_zoo_does(exported, tmp_path, settings):
    series = write(tmp_path, "series.csv", SERIES)
    csv = {**CSV_SMALL, "input_length": 6, "horizon": 5, "data": str(series)}
    path, onnx_path, _ = exported("gru-regressor", "csv", hidden_size=8, **csv, **settings)
    runtime = zoo_runtime.load(onnx_path)
    inputs = [" ".join(str(0.5 * k) for k in range(8)), " ".join(str(-k) for k in range(6))]
    want, got = zoo.predict(path, inputs), runtime.predict(inputs)
    assert [p["text"] for p in got] == [p["text"] for p in want]
    assert np.allclose([p["output"] for p in got], [p["output"] for p in want], atol=TOLERANCE)
    numbers = [str(k % 7) for k in range(6)]
    assert runtime.predict(numbers)[0]["text"] == zoo.predict(path, numbers)[0]["text"]


def test_forecaster_without_csv_columns(exported):
    path, onnx_path, _ = exported("gru-regressor", "sine-windows", hidden_size=8)
    numbers = [str(0.1 * k) for k in range(10)]
    (got,), (want,) = zoo_runtime.load(onnx_path).predict(numbers), zoo.predict(path, numbers)
    assert got["text"] == want["text"] and got["input"] == want["input"]
    assert np.allclose(got["output"], want["output"], atol=TOLERANCE)


def test_forecaster_reads_a_csv_as_zoo_does(tmp_path, one_thread):
    from tests.runtime.conftest import scrambled
    from zoo.features.export import export_onnx

    series = write(tmp_path, "series.csv", SERIES)
    model = scrambled("gru-regressor", "csv", data=str(series), hidden_size=8, **CSV_SMALL)
    model.save(tmp_path / "m.safetensors")
    export_onnx(zoo.load(tmp_path / "m.safetensors"), tmp_path / "m.onnx")
    text, predictions = zoo.predict_file(tmp_path / "m.safetensors", series)
    runtime = zoo_runtime.load(tmp_path / "m.onnx")
    got_text, got = runtime.predict_file(SERIES, str(series))
    assert got_text == text and text.startswith("date,v\n2020-01-02 00:00:00,")
    assert got[0]["timestamps"] == predictions[0]["timestamps"]


def test_the_file_carries_what_the_model_file_does(exported):
    import onnx

    path, onnx_path, _ = exported("lstm-tagger", "toy-tags", hidden_size=8)
    metadata = {p.key: p.value for p in onnx.load(onnx_path).metadata_props}
    info = zoo.core.modelfile.read_info(path)
    assert metadata["format"] == "zoo.onnx" and metadata["architecture"] == "lstm-tagger"
    for key in ("config", "data_config", "train_config", "data_state", "metrics", "plugin"):
        assert json.loads(metadata[key]) == info[key]
    runtime = json.loads(metadata["runtime"])
    assert runtime["kind"] == "tagger" and runtime["graphs"]["model"]["outputs"] == ["scores"]


@pytest.mark.parametrize(
    "dataset, settings, inputs, options",
    [
        ("sine-cosine", {"bidirectional": True}, ["0 0.3 0.6 0.9", "1 2"], {}),
        ("char-pairs", {"embedding_dim": 4, "num_layers": 2}, ["hello", "hell"], {}),
        ("text", {"cell": "lstm"}, ["To be", "T"], {"temperature": 0, "length": 30}),
        ("text", {"embedding_dim": 8, "cell": "gru"}, ["or not"], {"temperature": 0, "length": 9}),
    ],
    ids=["step-regression", "step-classification", "char-lm-lstm", "char-lm-gru"],
)
def test_elman_models_answer_as_zoo_does(exported, dataset, settings, inputs, options):
    path, onnx_path, _ = exported("elman-rnn", dataset, hidden_size=12, **settings)
    got = zoo_runtime.load(onnx_path).predict(inputs, **options)
    want = zoo.predict(path, inputs, **options)
    assert [p["text"] for p in got] == [p["text"] for p in want]
    if dataset == "sine-cosine":  # numbers rounded to 6 places: the last may differ
        for a, b in zip(got, want):
            assert np.allclose(a["output"], b["output"], atol=TOLERANCE)
    else:
        assert got == want


def test_char_lm_samples_with_its_own_generator(exported):
    _, onnx_path, _ = exported("elman-rnn", "text", hidden_size=12)
    runtime = zoo_runtime.load(onnx_path)
    first = runtime.predict(["To be"], length=20, seed=3)[0]["output"]
    assert len(first) == 20 and first == runtime.predict(["To be"], length=20, seed=3)[0]["output"]
    assert "<unk>" not in first


@pytest.mark.parametrize(
    "settings",
    [
        {"attention": "luong"},
        {"attention": "none", "cell": "gru"},
        {"attention": "bahdanau", "bidirectional": True, "num_layers": 2},
        {"attention": "luong", "cell": "rnn", "tie_embeddings": "output", "impl": "cells"},
    ],
    ids=["luong-lstm", "none-gru", "bahdanau-bidirectional", "rnn-tied-cells"],
)
@pytest.mark.parametrize("beam_size", [1, 3])
def test_seq2seq_translates_as_zoo_does(exported, settings, beam_size):
    path, onnx_path, doc = exported(
        "rnn-seq2seq", "word-pairs", hidden_size=16, embedding_dim=8, **settings
    )
    assert set(doc["graphs"]) == {"encoder", "decoder"}
    sources = ["jump twice", "walk left", "run around right thrice", "look"]
    options = {"beam_size": beam_size, "max_length": 15, "batch_size": 3}
    want = zoo.predict(path, sources, **options)
    assert zoo_runtime.load(onnx_path).predict(sources, **options) == want
