"""The Elman RNN's datasets: generated sine/cosine sequences and char-pairs files, read by
zoo.textfile and split by zoo.splits (the text dataset is in test_charlm.py)."""

from __future__ import annotations

import pytest
import torch
from zoo_plugins.elman_rnn import CharPairsConfig, SineCosineConfig
from zoo_plugins.elman_rnn.data import collate_regression, load_char_pairs, load_sine_cosine

from zoo.core.errors import DataError
from zoo.toolkit.textfile import read_text

PAIRS = "hello\tohlol\nworld\tdlrow\nabc\tbca\nzebra\tarbez\nrnn\tnnr\nstate\tetats\n"


@pytest.fixture
def pairs_file(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text(PAIRS)
    return path


# ---------------------------------------------------------------------------- sine-cosine
def test_sine_cosine_holds_out_a_tenth_each_and_evaluates_the_same_split():
    config = SineCosineConfig(num_sequences=50, length=4)
    data = load_sine_cosine(config, None)
    assert [data.size(s) for s in ("train", "valid", "test")] == [40, 5, 5]
    assert data.summary == "sine-cosine: 40/5/5 sequences of 4 steps"
    again = load_sine_cosine(config, data.state)  # `zoo eval`: the state of the trained model
    assert again.splits["test"] == data.splits["test"]
    other_seed = load_sine_cosine(SineCosineConfig(num_sequences=50, length=4, split_seed=1), None)
    assert other_seed.splits["test"] != data.splits["test"]


def test_collate_regression_pads_rows_of_vectors_and_masks_the_padding():
    short = ([[0.5, 1.0]], [[1.5]])
    long = ([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], [[1.0], [2.0], [3.0]])
    batch = collate_regression([short, long])
    assert batch["x"].shape == (2, 3, 2) and batch["y"].shape == (2, 3, 1)
    assert batch["x"].dtype == batch["y"].dtype == torch.float32
    assert batch["lengths"].tolist() == [1, 3]
    assert batch["mask"].tolist() == [[True, False, False], [True, True, True]]
    assert batch["x"][1].tolist() == torch.tensor(long[0]).tolist()
    assert batch["x"][0, 1:].abs().sum() == 0 and batch["y"][0, 0, 0] == 1.5


# ----------------------------------------------------------------------------- char-pairs
def test_char_pairs_defaults_to_hello_all_for_training():
    data = load_char_pairs(CharPairsConfig(), None)
    assert data.summary == "char-pairs: 1/0/0 pairs from hello -> ohlol"
    assert "fingerprint" not in data.state  # built-in data
    assert data.state["output_vocab"][0] == "<unk>"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"hello\tohlol\nab\xffc\tabcd\n",
            r"pairs\.tsv:2: not UTF-8 text \(byte 0xff at column 3\)",
        ),
        (b"hello\tohlol\n\nno tab here\n", r"pairs\.tsv:3: expected 'input<TAB>target'"),
        (b"hello\tohlol\nabc\tab\n", r"pairs\.tsv:2: .*same non-zero length \(3 vs 2\)"),
        (b"\tx\n", r"pairs\.tsv:1: .*same non-zero length \(0 vs 1\)"),
        (b"\n  \n", r"pairs\.tsv: no pairs found"),
        (b"ab\x00\tcd\n", r"pairs\.tsv:1: contains a NUL byte"),
    ],
)
def test_a_bad_pairs_file_is_one_line_naming_file_and_line(tmp_path, content, message):
    path = tmp_path / "pairs.tsv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_char_pairs(CharPairsConfig(path=str(path)), None)


def test_a_missing_pairs_file_names_it(tmp_path):
    with pytest.raises(DataError, match=r"nope\.tsv: no such file"):
        load_char_pairs(CharPairsConfig(path=str(tmp_path / "nope.tsv")), None)


def test_windows_line_endings_and_a_byte_order_mark_are_read(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_bytes(b"\xef\xbb\xbfhello\tohlol\r\nab\tba\r\n")
    data = load_char_pairs(CharPairsConfig(path=str(path)), None)
    assert data.size("train") == 2
    assert set(data.state["output_vocab"]) == {"<unk>", "o", "h", "l", "b", "a"}


def test_char_pairs_split_by_fraction_and_keeps_the_file_fingerprint(pairs_file):
    config = CharPairsConfig(path=str(pairs_file), valid_fraction=0.2, test_fraction=0.2)
    data = load_char_pairs(config, None)
    assert [data.size(s) for s in ("train", "valid", "test")] == [4, 1, 1]
    assert data.state["fingerprint"] == read_text(pairs_file).fingerprint
    # the same file evaluated again: the very same held-out pairs
    again = load_char_pairs(config, data.state)
    assert again.splits == data.splits


def test_evaluating_the_training_file_without_held_out_pairs_scores_all_of_it(pairs_file):
    config = CharPairsConfig(path=str(pairs_file))
    data = load_char_pairs(config, None)
    assert not data.has("test")
    again = load_char_pairs(config, data.state)
    assert again.size("test") == 6 and not again.has("valid")


def test_evaluating_another_file_scores_the_whole_file(pairs_file, tmp_path):
    config = CharPairsConfig(path=str(pairs_file), valid_fraction=0.2, test_fraction=0.2)
    state = load_char_pairs(config, None).state
    other = tmp_path / "other.tsv"
    other.write_text("hello\tohlol\nxyz\tzyx\nwow\twow\n")
    data = load_char_pairs(CharPairsConfig(path=str(other), valid_fraction=0.2), state)
    assert [data.size(s) for s in ("train", "valid", "test")] == [0, 0, 3]
    assert data.state is state  # the trained vocabularies encode it; unseen symbols are <unk>
    inputs = state["input_vocab"]
    assert data.splits["test"][1][0] == [inputs.index("<unk>")] * 3


def test_char_pairs_takes_dev_and_test_files(pairs_file, tmp_path):
    dev, test = tmp_path / "dev.tsv", tmp_path / "test.tsv"
    dev.write_text("abc\tcba\n")
    test.write_text("ab\tba\nba\tab\n")
    config = CharPairsConfig(
        path=str(pairs_file), valid_fraction=0.5, dev_path=str(dev), test_path=str(test)
    )
    data = load_char_pairs(config, None)
    assert [data.size(s) for s in ("train", "valid", "test")] == [6, 1, 2]
    test.write_bytes(b"ab\tba\nb\xe9\tab\n")
    with pytest.raises(DataError, match=r"test\.tsv:2: not UTF-8 text \(byte 0xe9 at column 2\)"):
        load_char_pairs(config, None)
