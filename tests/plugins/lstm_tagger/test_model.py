"""The tagger network: its variants, padding, prediction on CoNLL-U and text files, vectors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from zoo_plugins.lstm_tagger.model import LSTMTagger

import zoo
from tests.conftest import SHARED_DATA
from tests.plugins.lstm_tagger.test_conllu import SAMPLE, write
from zoo.core.errors import DataError, SettingError

EWT = SHARED_DATA / "ud-english-ewt"
needs_ewt = pytest.mark.skipif(not EWT.is_dir(), reason=f"{EWT} is absent (no shared data)")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("settings", "layers"),
    [
        ({"char_encoder": "cnn"}, {"char_cnn.weight", "char_embedding.weight"}),
        ({"char_encoder": "lstm"}, {"char_lstm.weight_ih_l0_reverse"}),
        ({"char_encoder": "none", "bidirectional": False}, set()),
    ],
)
def test_variants_learn_the_toy_corpus(settings, layers):
    model = zoo.create("lstm-tagger", epochs=30, **settings)
    zoo.train(model)
    names = set(model.module.state_dict())
    assert layers <= names
    assert settings.get("char_encoder") != "none" or not any("char" in n for n in names)
    assert zoo.evaluate(model, split="train")["accuracy"] > 0.95


def test_the_seed_style_tagger_is_a_setting():
    model = zoo.create(
        "lstm-tagger", char_encoder="none", bidirectional=False, num_layers=1, epochs=1
    )
    shapes = {k: tuple(v.shape) for k, v in model.module.state_dict().items()}
    assert set(shapes) == {
        "embedding.weight",
        "lstm.weight_ih_l0",
        "lstm.weight_hh_l0",
        "lstm.bias_ih_l0",
        "lstm.bias_hh_l0",
        "out.weight",
        "out.bias",
    }
    assert shapes["lstm.weight_ih_l0"] == (4 * 64, 64)  # words only feed the LSTM


@pytest.mark.parametrize("encoder", ["cnn", "lstm"])
def test_padding_changes_nothing_and_costs_no_loss(encoder):
    """A sentence alone and in a padded batch next to a longer one gets the same scores."""
    model = zoo.create("lstm-tagger", char_encoder=encoder, epochs=1)
    module = model.module.eval()
    examples = list(model.data.splits["train"])
    short = min(examples, key=lambda e: len(e[0]))
    long = max(examples, key=lambda e: len(e[0]))
    alone = model.data.collate([short])
    both = model.data.collate([short, long])
    assert both["words"].shape[1] > alone["words"].shape[1]
    with torch.no_grad():
        a = module.scores(alone)[0]
        b = module.scores(both)[0, : a.shape[0]]
        assert torch.allclose(a, b, atol=1e-5)
        # loss over the padded batch = mean over real words of both sentences
        scores = module.scores(both)
        real = both["tags"] != -100
        expected = torch.nn.functional.cross_entropy(scores[real], both["tags"][real])
        assert torch.allclose(module.loss(both), expected)


def test_label_smoothing_spreads_the_target_over_real_words_only():
    model = zoo.create("lstm-tagger", label_smoothing=0.1, epochs=1)
    module = model.module.eval()
    batch = model.data.collate(list(model.data.splits["train"][:4]))
    with torch.no_grad():
        scores = module.scores(batch)
        real = batch["tags"] != -100
        log_p = scores[real].log_softmax(-1)
        nll = -log_p.gather(1, batch["tags"][real].unsqueeze(1)).mean()
        expected = 0.9 * nll + 0.1 * -log_p.mean(-1).mean()
        assert torch.allclose(module.loss(batch), expected, atol=1e-6)
        module.config = dataclasses.replace(module.config, label_smoothing=0.0)
        assert torch.allclose(module.loss(batch), nll, atol=1e-6)


def test_eval_reports_known_unknown_and_per_tag_scores(zoo, tmp_path):
    run = zoo("run", "lstm-tagger", "--epochs", "20", "--out", "t.safetensors")
    shown = [line for line in run.stderr.splitlines() if ": valid " in line]
    assert shown and all("unknown_accuracy" in s and "recall/" not in s for s in shown)
    r = zoo("eval", "t.safetensors", "--json")
    m = r.json()["metrics"]
    assert {"accuracy", "known_accuracy", "unknown_accuracy", "unknown_words"} <= set(m)
    recall = {k: v for k, v in m.items() if k.startswith("recall/")}
    assert "recall/DET" in recall and all(0 <= v <= 1 for v in recall.values())
    known = m["words"] - m["unknown_words"]
    together = m["known_accuracy"] * known + m["unknown_accuracy"] * m["unknown_words"]
    assert together == pytest.approx(m["accuracy"] * m["words"])
    text = zoo("eval", "t.safetensors").stdout
    assert "unknown_accuracy" in text and "recall/NN" in text


def test_per_tag_scores_count_every_gold_word():
    """recall/TAG is the share of the words whose gold tag is TAG that got it; the confusion
    matrix counts every scored word once, so its rows sum to the words per gold tag."""
    model = zoo.create("lstm-tagger", epochs=3)
    zoo.train(model)
    m = zoo.evaluate(model, split="valid")
    matrix = m["confusion"]
    assert matrix["labels"] == model.state["tags"]
    counts = torch.tensor(matrix["counts"])
    assert int(counts.sum()) == m["words"]
    assert m["accuracy"] == pytest.approx(int(counts.diagonal().sum()) / m["words"])
    for i, tag in enumerate(matrix["labels"]):
        if counts[i].sum():
            assert m[f"recall/{tag}"] == pytest.approx(float(counts[i, i] / counts[i].sum()))


@pytest.fixture(scope="module")
def conllu_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conllu")
    train = write(folder, SAMPLE * 3, "train.conllu")
    path = folder / "tagger.safetensors"
    # no auxiliary columns: a plain tagger, which predicts as before they were learnt
    # (test_columns.py covers the recipe's XPOS and FEATS heads)
    zoo.run("lstm-tagger", "conllu", train, out=path, epochs=40, lr=0.01, aux_columns="")
    return path


def test_predict_fills_upos_and_keeps_every_other_byte(zoo, tmp_path, conllu_model):
    # _ in UPOS to fill, a wrong tag to overwrite, CRLF, multiword and empty-node lines, comments
    source = SAMPLE.replace("\tPRON\t", "\t_\t").replace("\tNOUN\t", "\tADJ\t")
    src = write(tmp_path, source, "in.conllu")
    r = zoo("predict", conllu_model, "--input", src, "--output", "out.conllu")
    assert r.code == 0, r.stderr
    out = (tmp_path / "out.conllu").read_bytes()
    before, after = source.encode().split(b"\n"), out.split(b"\n")
    assert len(before) == len(after)
    changed = 0
    for old, new in zip(before, after):
        a, b = old.split(b"\t"), new.split(b"\t")
        if len(a) == 10 and a[0].isdigit():
            assert a[:3] + a[4:] == b[:3] + b[4:]  # every column but UPOS, byte for byte
            changed += a[3] != b[3]
        else:
            assert old == new  # comments, blank lines, 3-4 and 4.1 lines
    assert changed >= 2  # the _ and the wrong tag were replaced
    assert b"\tPRON\t" in out and b"\tNOUN\t" in out
    assert out.endswith(b"\n\n") and b"punct\t_\t_\r\n" in out


def test_a_byte_order_mark_survives_rewriting(tmp_path, conllu_model):
    """A file that starts with a UTF-8 byte-order mark is read past it and written back with
    it: the output differs from the input in the filled tags only."""
    raw = b"\xef\xbb\xbf" + SAMPLE.replace("\tNOUN\t", "\t_\t").encode()
    src = write(tmp_path, raw, "bom.conllu")
    _, predictions = zoo.predict_file(conllu_model, src, tmp_path / "out.conllu")
    out = (tmp_path / "out.conllu").read_bytes()
    assert out.startswith(b"\xef\xbb\xbf# newdoc") and out.count(b"\xef\xbb\xbf") == 1
    filled = []
    for old, new in zip(raw.split(b"\n"), out.split(b"\n"), strict=True):
        a, b = old.split(b"\t"), new.split(b"\t")
        if len(a) == 10 and a[0].isdigit():
            assert a[:3] + a[4:] == b[:3] + b[4:]
            filled.append(b[3].decode())
        else:
            assert old == new
    assert filled == [tag for p in predictions for _, tag in p["output"]]


def test_predict_tags_plain_text_lines(zoo, tmp_path, conllu_model):
    src = write(tmp_path, "Dogs bark\n\nI can go .\n", "in.txt")
    r = zoo("predict", conllu_model, "--input", src)
    assert r.code == 0, r.stderr
    assert r.stdout == "Dogs/NOUN bark/VERB\n\nI/PRON can/AUX go/VERB ./PUNCT\n"
    r = zoo("predict", conllu_model, "Dogs bark", "--json")
    assert r.json()["predictions"][0]["output"] == [["Dogs", "NOUN"], ["bark", "VERB"]]
    assert "columns" not in r.json()["predictions"][0]  # one column: nothing more to say


def test_plain_text_keeps_blank_lines_aligned(tmp_path, conllu_model):
    """Not CoNLL-U: one sentence a line, one output line each; blank and white-space lines
    stay blank, so output line N answers input line N (CRLF ends and all)."""
    src = write(tmp_path, "\nDogs bark\r\n   \n\t\nI go\n\nbark\n", "in.txt")
    text, predictions = zoo.predict_file(conllu_model, src)
    lines_in = src.read_text(encoding="utf-8").split("\n")[:-1]
    lines_out = text.split("\n")[:-1]
    assert len(lines_out) == len(lines_in) == 7
    for before, after in zip(lines_in, lines_out):
        words = before.split()
        assert [token.rpartition("/")[0] for token in after.split()] == words
    assert [p["input"] for p in predictions] == ["Dogs bark", "I go", "bark"]
    assert lines_out[1] == predictions[0]["text"]


def test_predict_file_errors_are_one_line(zoo, tmp_path, conllu_model):
    bad = write(tmp_path, "# c\n1\tDogs\t_\n\n", "bad.conllu")
    r = zoo("predict", conllu_model, "--input", bad)
    assert r.code == 1 and f"{bad}:2: expected 10 tab-separated columns" in r.error_line()


def test_pretrained_vectors_start_the_embeddings_at_creation_only(tmp_path):
    """Core: `initialise` runs when a model is created, not when its file is loaded."""
    vectors = tmp_path / "vec.txt"
    vectors.write_text("3 4\nthe 1 2 3 4\nDog 0.5 0.5 0.5 0.5\nzebra 9 9 9 9\n")
    model = zoo.create("lstm-tagger", embedding_dim=4, pretrained_vectors=str(vectors), epochs=1)
    vocab = model.state["words"]
    emb = model.module.embedding.weight
    assert emb[vocab.index("the")].tolist() == [1, 2, 3, 4]
    assert emb[vocab.index("dog")].tolist() == [0.5] * 4  # lower-cased like the vocabulary
    model.save(tmp_path / "m.safetensors")
    vectors.unlink()  # loading never reads the vectors file
    loaded = zoo.load(tmp_path / "m.safetensors")
    assert torch.equal(loaded.module.embedding.weight, emb)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("the 1 2 3\n", "vec.txt:1: expected a word and 4 numbers"),
        ("the 1 2 3 x\n", "vec.txt:1: a value of 'the' is not a number"),
        ("", "vec.txt: no vectors"),
        (None, "vec.txt: no such file"),
        (b"the 1 2 3 4\ndog 1 \xff 3 4\n", r"vec.txt:2: not UTF-8 text \(byte 0xff at column 7\)"),
    ],
)
def test_bad_vector_files_are_data_errors(tmp_path, text, message):
    if isinstance(text, bytes):
        (tmp_path / "vec.txt").write_bytes(text)
    elif text is not None:
        (tmp_path / "vec.txt").write_text(text)
    with pytest.raises(DataError, match=message):
        zoo.create(
            "lstm-tagger", embedding_dim=4, pretrained_vectors=str(tmp_path / "vec.txt"), epochs=1
        )


@pytest.mark.slow
@needs_ewt
def test_ewt_slice_trains_and_tags(tmp_path):
    """The first 200 sentences of each EWT file: loads, trains a little, far beats always-NOUN (17%)."""
    model = zoo.create(
        "lstm-tagger",
        dataset="conllu",
        data=EWT,
        limit=200,
        epochs=5,
        batch_size=8,
        lr=0.005,
        hidden_size=32,
        aux_columns="",  # the recipe's extra targets slow the first epochs
    )
    assert model.data.size("train") == 200 and model.data.size("test") == 200
    assert len(model.state["tags"]) == 17  # the UPOS tag set
    zoo.train(model)
    scores = zoo.evaluate(model)
    assert scores["accuracy"] > 0.45 and scores["unknown_words"] > 0


def test_settings_that_cannot_work_are_usage_errors(zoo):
    r = zoo("run", "lstm-tagger", "--set", "char_kernel=4")
    assert r.code == 2 and "char_kernel must be odd" in r.error_line()
    r = zoo("run", "lstm-tagger", "--set", "char_encoder=gru")
    assert r.code == 2 and "char_encoder" in r.error_line()


def test_a_char_encoder_without_characters_is_a_setting_error():
    """Data without a character vocabulary: the setting is named, and the way out given."""
    model = zoo.create("lstm-tagger", epochs=1)
    state = {k: v for k, v in model.state.items() if k != "chars"}
    with pytest.raises(SettingError) as err:
        LSTMTagger(model.config, state)
    assert str(err.value).startswith("char_encoder=cnn: the data has no character vocabulary")
    assert "--set" not in str(err.value) and "char_encoder=none" in str(err.value)
    words_only = dataclasses.replace(model.config, char_encoder="none")
    assert not any("char" in name for name in LSTMTagger(words_only, state).state_dict())


def test_the_char_cnn_is_the_convolution_it_names():
    """char_cnn.weight is used as windows @ weights (to spare oneDNN's per-shape cache); the
    numbers must be those of the plain nn.Conv1d it is stored as."""
    model = zoo.create("lstm-tagger", char_kernel=5, epochs=1)
    module = model.module.eval()
    batch = model.data.collate(model.data.splits["train"][:8])
    x = module.char_embedding(batch["chars"]).transpose(1, 2)
    conv = module.char_cnn(x).masked_fill((batch["chars"] == 0).unsqueeze(1), float("-inf"))
    expected = torch.tanh(conv.amax(dim=2))
    got = module.char_features(batch["chars"], batch["char_lengths"])
    assert torch.allclose(got, expected, atol=1e-6)
