"""The tagger network: its variants, padding, prediction on CoNLL-U and text files, vectors."""

from __future__ import annotations

import pytest
import torch
from conftest import SHARED_DATA
from test_tagger_conllu import SAMPLE, write
from zoo_plugins.lstm_tagger import model as tagger

import zoo
from zoo.errors import DataError

EWT = SHARED_DATA / "ud-english-ewt"
needs_ewt = pytest.mark.skipif(not EWT.is_dir(), reason=f"{EWT} is absent (no shared data)")


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
        a = tagger.scores_of(module, alone)[0]
        b = tagger.scores_of(module, both)[0, : a.shape[0]]
        assert torch.allclose(a, b, atol=1e-5)
        # loss over the padded batch = mean over real words of both sentences
        scores = tagger.scores_of(module, both)
        real = both["tags"] != -100
        expected = torch.nn.functional.cross_entropy(scores[real], both["tags"][real])
        assert torch.allclose(tagger.loss(module, both), expected)


def test_label_smoothing_spreads_the_target_over_real_words_only():
    model = zoo.create("lstm-tagger", label_smoothing=0.1, epochs=1)
    module = model.module.eval()
    batch = model.data.collate(list(model.data.splits["train"][:4]))
    with torch.no_grad():
        scores = tagger.scores_of(module, batch)
        real = batch["tags"] != -100
        log_p = scores[real].log_softmax(-1)
        nll = -log_p.gather(1, batch["tags"][real].unsqueeze(1)).mean()
        expected = 0.9 * nll + 0.1 * -log_p.mean(-1).mean()
        assert torch.allclose(tagger.loss(module, batch), expected, atol=1e-6)
        module.label_smoothing = 0.0
        assert torch.allclose(tagger.loss(module, batch), nll, atol=1e-6)


def test_eval_reports_known_unknown_and_per_tag_accuracy(zoo, tmp_path):
    run = zoo("run", "lstm-tagger", "--epochs", "20", "--out", "t.safetensors")
    shown = [line for line in run.stderr.splitlines() if ": valid " in line]
    assert shown and all("unknown_accuracy" in s and "accuracy/" not in s for s in shown)
    r = zoo("eval", "t.safetensors", "--json")
    m = r.json()["metrics"]
    assert {"accuracy", "known_accuracy", "unknown_accuracy", "unknown_words"} <= set(m)
    per_tag = {k: v for k, v in m.items() if k.startswith("accuracy/")}
    assert "accuracy/DET" in per_tag and all(0 <= v <= 1 for v in per_tag.values())
    known = m["words"] - m["unknown_words"]
    together = m["known_accuracy"] * known + m["unknown_accuracy"] * m["unknown_words"]
    assert together == pytest.approx(m["accuracy"] * m["words"])
    text = zoo("eval", "t.safetensors").stdout
    assert "unknown_accuracy" in text and "accuracy/NN" in text


@pytest.fixture(scope="module")
def conllu_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conllu")
    train = write(folder, SAMPLE * 3, "train.conllu")
    path = folder / "tagger.safetensors"
    zoo.run("lstm-tagger", "conllu", train, out=path, epochs=40, lr=0.01)
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


def test_predict_tags_plain_text_lines(zoo, tmp_path, conllu_model):
    src = write(tmp_path, "Dogs bark\n\nI can go .\n", "in.txt")
    r = zoo("predict", conllu_model, "--input", src)
    assert r.code == 0, r.stderr
    assert r.stdout == "Dogs/NOUN bark/VERB\n\nI/PRON can/AUX go/VERB ./PUNCT\n"
    r = zoo("predict", conllu_model, "Dogs bark", "--json")
    assert r.json()["predictions"][0]["output"] == [["Dogs", "NOUN"], ["bark", "VERB"]]


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
        (None, "vec.txt: pretrained_vectors: no such file"),
    ],
)
def test_bad_vector_files_are_data_errors(tmp_path, text, message):
    if text is not None:
        (tmp_path / "vec.txt").write_text(text)
    with pytest.raises(DataError, match=message):
        zoo.create(
            "lstm-tagger", embedding_dim=4, pretrained_vectors=str(tmp_path / "vec.txt"), epochs=1
        )


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
