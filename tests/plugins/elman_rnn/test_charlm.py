"""The Elman RNN as a character language model: the `text` dataset, truncated BPTT with the
hidden state carried across batches, bits per character, and sampling with `zoo predict`."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zoo_plugins.elman_rnn import TextConfig
from zoo_plugins.elman_rnn.data import Stream, load_text, text_of

import zoo
from tests.conftest import SHARED_DATA
from zoo.core.errors import DataError, UsageError
from zoo.toolkit.textfile import embedded as zoo_embedded
from zoo.toolkit.textfile import read_text

EWT = SHARED_DATA / "ud-english-ewt"


pytestmark = pytest.mark.usefixtures("one_thread")


def text_config(**values) -> TextConfig:
    return TextConfig(**values)


# ------------------------------------------------------------------------------- reading
def test_reader_errors_are_one_line_data_errors(tmp_path):
    def load(path, **settings):
        return load_text(text_config(path=str(path), **settings), None)

    with pytest.raises(DataError, match=r"nope\.txt: no such file"):
        load(tmp_path / "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataError, match=r"empty\.txt: empty text file"):
        load(empty)
    blank = tmp_path / "blank.txt"
    blank.write_text(" \n\n\t\n")
    with pytest.raises(DataError, match="empty text file"):
        load(blank)
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("line one\ncaf\u00e9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.txt:2: not UTF-8 text \(byte 0xe9 at column 4\)"):
        load(latin)
    with pytest.raises(DataError, match="is a folder"):
        load(tmp_path)
    not_conllu = tmp_path / "x.conllu"
    not_conllu.write_text("1\tHello\thello\tINTJ\n")
    with pytest.raises(DataError, match=r"x\.conllu: no '# text = ' sentence lines"):
        load(not_conllu)
    dev = tmp_path / "dev.txt"
    dev.write_bytes(b"fine\n\xff\n")
    good = tmp_path / "good.txt"
    good.write_text("To be, or not to be.\n" * 3)
    with pytest.raises(DataError, match=r"dev\.txt:2: not UTF-8 text \(byte 0xff at column 1\)"):
        load(good, dev_path=str(dev))


def test_conllu_sentences_and_line_endings(tmp_path):
    f = tmp_path / "s.conllu"
    f.write_text(
        "# sent_id = 1\r\n# text = Hello there.\r\n1\tHello\t_\n\n# text = Bye!\n1\tBye\t_\n"
    )
    assert text_of(read_text(f)) == "Hello there.\nBye!\n"
    assert text_of(read_text(f), "plain").startswith("# sent_id = 1\n# text = Hello there.\n1")
    plain = tmp_path / "p.txt"
    plain.write_bytes(b"\xef\xbb\xbfa\r\nb\rc")  # BOM, CRLF, CR
    assert text_of(read_text(plain)) == "a\nb\nc"


def test_splits_that_end_up_empty_are_refused(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("abcdefghij")
    with pytest.raises(DataError, match=r"t\.txt: the validation part has 1 character"):
        load_text(text_config(path=str(f), valid_fraction=0.1), None)
    with pytest.raises(DataError, match="the test part has 0 character"):
        load_text(text_config(path=str(f), valid_fraction=0.5, test_fraction=0.01), None)
    with pytest.raises(DataError, match="the training part has 0 character.*valid_fraction"):
        load_text(text_config(path=str(f), valid_fraction=0.5, test_fraction=0.5), None)
    with pytest.raises(UsageError, match="at most 1"):
        load_text(text_config(path=str(f), valid_fraction=0.6, test_fraction=0.6), None)
    data = load_text(text_config(path=str(f), valid_fraction=0.2), None)
    assert (data.size("train"), data.size("valid"), data.has("test")) == (1, 1, False)


def test_the_text_is_cut_in_order_train_test_valid(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("".join(chr(ord("a") + i % 26) for i in range(100)))
    data = load_text(text_config(path=str(f), valid_fraction=0.2, test_fraction=0.1), None)
    vocab = data.state["vocab"]
    parts = {s: "".join(vocab[i] for i in data.splits[s].ids.tolist()) for s in data.splits}
    text = f.read_text()
    assert parts == {"train": text[:70], "test": text[70:80], "valid": text[80:]}
    assert data.state["fingerprint"] == read_text(f).fingerprint
    embedded = load_text(text_config(), None)  # the built-in text is recognised too
    assert (
        embedded.state["fingerprint"]
        == zoo_embedded("zoo_plugins.elman_rnn", "to_be.txt").fingerprint
    )
    other = load_text(text_config(path=str(f)), embedded.state)  # another file: scored whole
    assert not other.has("valid") and other.splits["test"].pairs == 99


@settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    content=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(lambda s: s.encode("utf-8")),
        st.lists(st.sampled_from(["# text = Hi.\n", "1\tHi\t_\n", "\n", "#text=x\n", "\xff"])).map(
            lambda parts: "".join(parts).encode("utf-8", "surrogateescape")
        ),
    ),
    suffix=st.sampled_from([".txt", ".conllu"]),
    valid_fraction=st.sampled_from([0.0, 0.1, 0.5]),
)
def test_reader_loads_or_raises_data_error(tmp_path_factory, content, suffix, valid_fraction):
    f = tmp_path_factory.mktemp("fuzz") / f"f{suffix}"
    f.write_bytes(content)
    try:
        data = load_text(text_config(path=str(f), valid_fraction=valid_fraction, bptt=4), None)
    except DataError as e:
        assert str(e).startswith(str(f)) and "\n" not in str(e)
        return
    assert data.has("train")
    vocab = data.state["vocab"]
    assert vocab[0] == "<unk>" and len(set(vocab)) == len(vocab)
    batches = list(data.batches("train", 3))
    assert batches and batches[0]["reset"] and not any(b["reset"] for b in batches[1:])


# ------------------------------------------------------------------- streams and carrying
def test_windows_are_contiguous_streams_covering_every_pair_once():
    ids = torch.arange(1, 24)  # 23 symbols: 22 (input, next) pairs
    batches = list(Stream(ids, bptt=3).windows(rows=4))
    x = torch.cat([b["x"] for b in batches], dim=1)
    y = torch.cat([b["y"] for b in batches], dim=1)
    assert [b["reset"] for b in batches] == [True, False]
    assert x.shape == (4, 6) and batches[0]["x"].shape == (4, 3)
    # row by row, the windows continue each other: the text cut into 4 contiguous pieces
    assert x[0].tolist() == [1, 2, 3, 4, 5, 6] and x[1].tolist() == [7, 8, 9, 10, 11, 12]
    assert (y[y != -100] == x[y != -100] + 1).all()  # each target is the next symbol
    assert sorted(x[y != -100].tolist()) == list(range(1, 23))  # every pair exactly once
    assert len(Stream(ids, bptt=3)) == 8  # windows of the whole text: the trainer's unit


def test_carried_state_equals_reading_the_whole_stream_at_once():
    """The h_state idea done right: window k+1 starts from window k's final state, so the
    outputs equal one pass over the whole row, while gradients stop at the window's start."""
    model = zoo.create("elman-rnn", "text", cell="lstm", hidden_size=16, bptt=5, epochs=1)
    module = model.module.train()
    batches = list(model.data.batches("train", 4))
    assert len(batches) > 2
    streamed = [module.stream(b["x"], b["reset"]) for b in batches]
    whole, _ = module.run(torch.cat([b["x"] for b in batches], dim=1))
    torch.testing.assert_close(torch.cat(streamed, dim=1), whole, atol=1e-5, rtol=1e-5)
    assert all(s.grad_fn is None for s in module.carry[True])  # detached
    # so each window back-propagates through itself only: without the detach, the second
    # backward would run into the first window's freed graph and fail
    module.stream(batches[0]["x"], True).sum().backward()
    module.stream(batches[1]["x"], False).sum().backward()
    # evaluation keeps its own state, so validating mid-epoch does not disturb training
    module.eval()
    module.stream(batches[0]["x"], True)
    assert module.carry[False] is not module.carry[True]


def test_a_fresh_pass_starts_from_a_zero_state():
    model = zoo.create("elman-rnn", "text", hidden_size=8, bptt=5, epochs=1)
    module = model.module.eval()
    first = next(iter(model.data.batches("valid", 2)))
    a = module.stream(first["x"], True)
    module.stream(first["x"], False)  # the state now differs from zero
    b = module.stream(first["x"], True)
    torch.testing.assert_close(a, b)


# ------------------------------------------------------------------ training and predict
@pytest.fixture(scope="module")
def lm_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("lm") / "lm.safetensors"
    result = zoo.run("elman-rnn", "text", out=path, epochs=30)
    return path, result


def test_trains_on_the_embedded_text_and_reports_bits_per_character(lm_file):
    _, result = lm_file
    valid = result.metrics["valid"]
    assert valid["bpc"] == pytest.approx(valid["loss"] / math.log(2))
    assert valid["characters"] == 140  # the last tenth of the soliloquy, every character once
    start_bpc = next(h["valid"]["bpc"] for h in result.training.history if "valid" in h)
    assert valid["bpc"] < start_bpc - 0.5 and valid["bpc"] < 4.0, (start_bpc, valid)
    assert result.model.state["vocab"][0] == "<unk>"


def test_predict_samples_a_continuation_with_options(lm_file, zoo):
    path, _ = lm_file
    r = zoo("predict", path, "To be", "--set", "length=40", "--set", "seed=3")
    assert r.code == 0, r.stderr
    assert r.stdout.startswith("To be") and len(r.stdout.rstrip("\n")) >= 40
    again = zoo("predict", path, "To be", "--set", "length=40", "--set", "seed=3")
    assert again.stdout == r.stdout  # same seed, same sample
    other = [
        zoo("predict", path, "To be", "--set", "length=40", "--set", f"seed={s}").stdout
        for s in (4, 5, 6)
    ]
    assert any(o != r.stdout for o in other)
    greedy = [
        zoo("predict", path, "To be", "--set", "temperature=0", "--set", f"seed={s}").stdout
        for s in (1, 2)
    ]
    assert greedy[0] == greedy[1]
    doc = zoo("predict", path, "To be", "Thus", "--set", "length=7", "--json").json()
    outs = doc["predictions"]
    assert [p["input"] for p in outs] == ["To be", "Thus"]
    assert all(len(p["output"]) == 7 and p["text"] == p["input"] + p["output"] for p in outs)
    assert all("<unk>" not in p["output"] for p in outs)
    assert "empty prompt" in zoo("predict", path, "").error_line()
    assert "temperature" in zoo("predict", path, "x", "--set", "temperature=-1").error_line()
    # unknown characters in a prompt are read as <unk>, not refused
    assert zoo("predict", path, "\u00e6\u00f8\u00e5 To be").code == 0


def test_eval_scores_a_whole_other_text(lm_file, zoo, tmp_path):
    path, _ = lm_file
    other = tmp_path / "other.txt"
    other.write_text("To be, or not to be: that is the question.\n")
    doc = zoo("eval", path, "--data", other, "--json").json()
    assert doc["metrics"]["characters"] == len(other.read_text()) - 1
    assert doc["metrics"]["bpc"] > 0
    valid = zoo("eval", path, "--split", "valid", "--json").json()["metrics"]
    assert valid["characters"] == 140
    short = tmp_path / "short.txt"
    short.write_text("Hi!")  # too short to cut a validation part off: evaluation needs none
    assert zoo("eval", path, "--data", short, "--json").json()["metrics"]["characters"] == 2
    short.write_text("H")
    assert "needs at least 2" in zoo("eval", path, "--data", short).error_line()


def test_a_model_trained_on_a_file_scores_another_file_whole(tmp_path):
    train = tmp_path / "train.txt"
    train.write_text("To be, or not to be, that is the question.\n" * 10)
    model = zoo.create("elman-rnn", "text", train, hidden_size=8, steps=2, test_fraction=0.1)
    zoo.train(model)
    path = tmp_path / "lm.safetensors"
    zoo.save(model, path)
    # the training file again: the very split training held out, scored the same
    for split in ("valid", "test"):
        assert zoo.evaluate(path, split=split) == zoo.evaluate(model, split=split)
    other = tmp_path / "other.txt"
    other.write_text("Whether 'tis nobler in the mind to suffer\n")
    assert zoo.evaluate(path, other)["characters"] == len(other.read_text()) - 1
    with pytest.raises(UsageError, match="it has: test"):
        zoo.evaluate(path, other, split="valid")


def test_cli_errors_for_bad_text_files(zoo, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\n\xff\xfe\n")
    line = zoo("run", "elman-rnn", "--dataset", "text", "--data", bad).error_line()
    assert "bad.txt:2: not UTF-8 text" in line
    line = zoo("run", "elman-rnn", "--dataset", "text", "--data", tmp_path / "no.txt").error_line()
    assert "no.txt: no such file" in line
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert (
        "empty text file"
        in zoo("run", "elman-rnn", "--dataset", "text", "--data", empty).error_line()
    )
    line = zoo(
        "run", "elman-rnn", "--dataset", "text", "--set", "bidirectional=true", "--epochs", "1"
    ).error_line()
    assert "reads left to right" in line
    line = zoo(
        "run", "elman-rnn", "--set", "cell=gru", "--set", "nonlinearity=relu", "--epochs", "1"
    ).error_line()
    assert "nonlinearity applies to the elman cell only" in line


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gru_and_lstm_cell_variants(cell):
    model = zoo.create("elman-rnn", "text", cell=cell, hidden_size=12, steps=3)
    gates = {"gru": 3, "lstm": 4}[cell]
    assert model.module.rnn.weight_hh_l0.shape == (gates * 12, 12)
    zoo.train(model)
    assert zoo.evaluate(model, split="valid")["bpc"] > 0


@pytest.mark.skipif(not EWT.is_dir(), reason="../shared/data/ud-english-ewt is absent")
def test_reads_the_sentences_of_a_real_conllu_file(tmp_path):
    head = []
    with open(EWT / "en_ewt-ud-train.conllu", encoding="utf-8") as f:
        for line in f:
            head.append(line)
            if line.startswith("# sent_id") and sum(x.startswith("# text") for x in head) >= 200:
                break
    part = tmp_path / "train200.conllu"
    part.write_text("".join(head[:-1]), encoding="utf-8")
    text = text_of(read_text(part))
    assert text.count("\n") == 200
    assert text.startswith("Al-Zaman : American forces killed Shaikh Abdullah al-Ani")
    model = zoo.create("elman-rnn", "text", data=part, steps=2, hidden_size=16)
    zoo.train(model)
    assert zoo.evaluate(model, split="valid")["characters"] == round(len(text) * 0.1) - 1
