"""The seq2seq datasets: SCAN and tab-separated readers, tokenising, vocabularies, splits, and
one-line errors for every kind of bad file (including fuzzed ones)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zoo_plugins.rnn_seq2seq import ScanConfig, SentencePairsConfig, WordPairsConfig
from zoo_plugins.rnn_seq2seq.data import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    collate,
    load_scan,
    load_sentence_pairs,
    load_word_pairs,
)

from tests.conftest import SHARED_DATA
from zoo.core.errors import DataError
from zoo.toolkit.vocab import Tokenizer

SCAN = SHARED_DATA / "scan"
SCAN_LINES = [
    "IN: jump OUT: I_JUMP",
    "IN: walk twice OUT: I_WALK I_WALK",
    "IN: jump left OUT: I_TURN_LEFT I_JUMP",
    "IN: run after walk OUT: I_WALK I_RUN",
    "IN: look thrice OUT: I_LOOK I_LOOK I_LOOK",
]
ANKI_LINES = [
    "Go.\tVe.\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) & #4986655 (cueyayotl)",
    "Hi.\tHola.\tCC-BY 2.0 (France) Attribution: tatoeba.org #538123 (CM) & #431975 (Leono)",
    "Run!\t¡Corre!\tCC-BY 2.0 (France) Attribution: tatoeba.org #906328 (papabear) & #1685404",
    "I'm OK, thanks.\tEstoy bien, gracias.\tCC-BY 2.0",
    "Who is he?\t¿Quién es él?\tCC-BY 2.0",
]


def plain(examples):
    """Examples as comparable lists (they hold numpy arrays)."""
    return [(list(s), list(t), text) for s, t, text in examples]


def write(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_scan_reader_reads_commands_and_actions_as_words(tmp_path):
    data = load_scan(ScanConfig(path=write(tmp_path, "train.txt", SCAN_LINES)), None)
    state = data.state
    assert state["tokens"] == "word" and state["max_target_length"] == 3
    assert {"jump", "twice", "after"} <= set(state["source"])
    assert {"I_JUMP", "I_TURN_LEFT"} <= set(state["target"])
    assert state["source"][:4] == ["<pad>", "<unk>", "<s>", "</s>"]
    assert data.size("train") == 5 and not data.has("valid") and not data.has("test")
    src, tgt, text = data.splits["train"][1]
    assert [state["source"][i] for i in src] == ["walk", "twice"]
    assert tgt[0] == BOS_ID and tgt[-1] == EOS_ID and text == "I_WALK I_WALK"


def test_scan_dev_and_test_files_fill_their_splits(tmp_path):
    train = write(tmp_path, "train.txt", SCAN_LINES)
    dev = write(tmp_path, "dev.txt", SCAN_LINES[:2])
    test = write(tmp_path, "test.txt", ["IN: jump twice OUT: I_JUMP I_JUMP"])
    data = load_scan(ScanConfig(path=train, dev_path=dev, test_path=test), None)
    assert (data.size("train"), data.size("valid"), data.size("test")) == (5, 2, 1)


def test_evaluating_on_another_file_puts_all_of_it_in_the_test_split(tmp_path):
    """`zoo eval model --data OTHER` scores all of OTHER; the training file itself keeps the
    held-out split it was trained with."""
    train = write(tmp_path, "train.txt", SCAN_LINES * 4)
    config = ScanConfig(path=train, test_fraction=0.25)
    trained = load_scan(config, None)
    again = load_scan(config, trained.state)
    assert plain(again.splits["test"]) == plain(trained.splits["test"]) and again.size("test") == 5
    other = write(tmp_path, "other.txt", [*SCAN_LINES, "IN: jump around OUT: I_FLY"])
    scored = load_scan(ScanConfig(path=other, test_fraction=0.25), trained.state)
    assert scored.size("test") == 6 and scored.size("train") == 0
    # words the model never saw become <unk> (id 1), never an error
    assert scored.splits["test"][-1][0][-1] == 1 and scored.splits["test"][-1][1][1] == 1


def test_the_fingerprint_is_of_the_files_bytes_and_marks_its_held_out_split(tmp_path):
    """The state keeps sha256 of the training file's raw bytes (16 hex digits, as model files
    written before zoo.textfile hold); evaluating that file, or with a state from before
    fingerprints, rebuilds the held-out split."""
    train = write(tmp_path, "train.txt", SCAN_LINES * 4)
    config = ScanConfig(path=train, valid_fraction=0.25, test_fraction=0.25)
    trained = load_scan(config, None)
    raw = Path(train).read_bytes()
    assert trained.state["fingerprint"] == hashlib.sha256(raw).hexdigest()[:16]
    old = {k: v for k, v in trained.state.items() if k != "fingerprint"}
    for state in (trained.state, old):
        again = load_scan(config, state)
        assert all(plain(again.splits[s]) == plain(trained.splits[s]) for s in ("valid", "test"))
    Path(train).write_bytes(raw + b"IN: walk OUT: I_WALK\n")  # another file now
    changed = load_scan(config, trained.state)
    assert changed.size("test") == 21 and not changed.has("valid") and not changed.has("train")


def test_word_pairs_take_dev_and_test_files(tmp_path):
    test = write(tmp_path, "test.tsv", ["cat\tgato", "dog\tperro"])
    data = load_word_pairs(WordPairsConfig(test_path=test), None)
    assert data.size("test") == 2 and data.size("train") > 20
    assert data.summary.endswith("from built-in data")


def test_tab_separated_pairs_ignore_extra_columns_and_split_punctuation(tmp_path):
    path = write(tmp_path, "spa.txt", ANKI_LINES)
    data = load_sentence_pairs(
        SentencePairsConfig(path=path, valid_fraction=0, test_fraction=0), None
    )
    state = data.state
    assert state["bleu"] is True and state["punctuation"] is True
    assert "CC" not in state["target"] and "Attribution" not in state["target"]
    assert {"Ve", ".", "¡", "Corre", "!", "¿", "Quién"} <= set(state["target"])
    assert "I'm" in state["source"]  # apostrophes stay inside words
    assert {text for _, _, text in data.splits["train"]} >= {"Ve.", "¡Corre!", "¿Quién es él?"}


def test_sentence_pairs_hold_out_fractions_deterministically(tmp_path):
    path = write(tmp_path, "spa.txt", [f"w{i} x\ty{i} z\t" for i in range(100)])
    config = SentencePairsConfig(path=path, valid_fraction=0.1, test_fraction=0.2, split_seed=3)
    first, again = load_sentence_pairs(config, None), load_sentence_pairs(config, None)
    assert (first.size("train"), first.size("valid"), first.size("test")) == (70, 10, 20)
    assert all(plain(first.splits[s]) == plain(again.splits[s]) for s in first.splits)


def test_vocabulary_limits_and_unknown_words(tmp_path):
    lines = ["a b c\tx y", "a b\tx", "a\tx z"]
    path = write(tmp_path, "p.tsv", lines)
    base = {"path": path, "valid_fraction": 0.0, "test_fraction": 0.0}
    full = load_sentence_pairs(SentencePairsConfig(**base), None).state
    assert full["source"][4:] == ["a", "b", "c"]
    capped = load_sentence_pairs(SentencePairsConfig(**base, vocab_size=5), None).state
    assert capped["source"][4:] == ["a"] and capped["target"][4:] == ["x"]
    frequent = load_sentence_pairs(SentencePairsConfig(**base, min_count=2), None).state
    assert frequent["source"][4:] == ["a", "b"]
    shared = load_sentence_pairs(SentencePairsConfig(**base, shared_vocab=True), None).state
    assert shared["source"] == shared["target"] and {"a", "x"} <= set(shared["source"])


def test_maximum_lengths_drop_long_training_pairs_only(tmp_path):
    lines = ["a\tx", "a b c d\tx", "a\tx y z w"]
    path = write(tmp_path, "p.tsv", lines)
    test = write(tmp_path, "t.tsv", lines)
    config = SentencePairsConfig(
        path=path, test_path=test, valid_fraction=0, max_source_length=3, max_target_length=3
    )
    data = load_sentence_pairs(config, None)
    assert data.size("train") == 1 and data.size("test") == 3
    short = SentencePairsConfig(
        path=path, valid_fraction=0, test_fraction=0, max_source_length=1, max_target_length=1
    )
    assert load_sentence_pairs(short, None).size("train") == 1
    too_short = SentencePairsConfig(
        path=write(tmp_path, "long.tsv", ["a b\tx"]),
        valid_fraction=0,
        test_fraction=0,
        max_source_length=1,
    )
    with pytest.raises(DataError, match="no training pairs left"):
        load_sentence_pairs(too_short, None)


def test_concatenation_adds_joined_training_pairs_deterministically(tmp_path):
    path = write(tmp_path, "train.txt", SCAN_LINES)
    config = ScanConfig(path=path, concat_pairs=2.0, split_seed=5)
    data, again = load_scan(config, None), load_scan(config, None)
    examples = plain(data.splits["train"])
    assert len(examples) == 5 + 10 and examples == plain(again.splits["train"])
    originals = [(s, t[1:-1]) for s, t, _ in examples[:5]]
    for s, t, text in examples[5:]:
        joined = [(s1 + s2, [2, *t1, *t2, 3]) for s1, t1 in originals for s2, t2 in originals]
        assert (s, t) in joined and text.count("I_") == len(t) - 2
    assert data.state["max_target_length"] > 3  # the decoding limit follows the longer outputs
    other = load_scan(ScanConfig(path=path, concat_pairs=2.0, split_seed=6), None)
    assert plain(other.splits["train"]) != examples


@pytest.mark.parametrize(
    ("text", "state", "tokens"),
    [
        ("jump twice  after walk", {"tokens": "word"}, ["jump", "twice", "after", "walk"]),
        ("¿Quién es él?", {"tokens": "word", "punctuation": True}, ["¿", "Quién", "es", "él", "?"]),
        (
            "I'm OK, thanks.",
            {"tokens": "word", "lowercase": False, "punctuation": True},
            ["I'm", "OK", ",", "thanks", "."],
        ),
        ("a  b", {"tokens": "char"}, ["a", " ", "b"]),
    ],
)
def test_saved_tokeniser_settings_round_trip(text, state, tokens):
    """The state keys model files hold (`tokens`, and since sentence-pairs `lowercase` and
    `punctuation`, absent from older scan and word-pairs files) give back the tokeniser."""
    tokenizer = Tokenizer.from_state(state)
    assert tokenizer(text) == tokens
    assert tokenizer.detokenize(tokens) == " ".join(text.split())


def test_the_state_records_the_tokeniser_it_was_built_with(tmp_path):
    path = write(tmp_path, "p.tsv", ANKI_LINES)
    config = SentencePairsConfig(path=path, lowercase=True, valid_fraction=0, test_fraction=0)
    state = load_sentence_pairs(config, None).state
    assert Tokenizer.from_state(state) == Tokenizer("word", lowercase=True, punctuation=True)
    scan = load_scan(ScanConfig(path=write(tmp_path, "s.txt", SCAN_LINES)), None).state
    assert "lowercase" not in scan and Tokenizer.from_state(scan) == Tokenizer("word")


def test_collate_pads_sources_and_frames_targets():
    batch = collate([([5, 6, 7], [BOS_ID, 8, EOS_ID], "x"), ([5], [BOS_ID, 8, 9, EOS_ID], "y z")])
    assert batch["src"].tolist() == [[5, 6, 7], [5, PAD_ID, PAD_ID]]
    assert batch["src_lengths"].tolist() == [3, 1]
    assert batch["tgt_in"].tolist() == [[BOS_ID, 8, PAD_ID], [BOS_ID, 8, 9]]
    assert batch["tgt_out"].tolist() == [[8, EOS_ID, -100], [8, 9, EOS_ID]]
    assert batch["references"] == ["x", "y z"]


# ------------------------------------------------------------------------------ bad files
@pytest.mark.parametrize(
    ("loader", "config", "lines", "message"),
    [
        (
            load_scan,
            ScanConfig,
            ["IN: jump OUT: I_JUMP", "jump I_JUMP"],
            ":2: expected 'IN: <command> OUT: <actions>'",
        ),
        (
            load_scan,
            ScanConfig,
            ["IN: jump OUT: I_JUMP", "", "IN: OUT: I_JUMP"],
            ":3: empty command or action sequence",
        ),
        (load_scan, ScanConfig, ["IN: jump OUT:"], ":1: empty command or action sequence"),
        (
            load_sentence_pairs,
            SentencePairsConfig,
            ["Go.\tVe.", "no tab here"],
            ":2: expected 'source<TAB>target'",
        ),
        (
            load_sentence_pairs,
            SentencePairsConfig,
            ["Go.\t  \tx"],
            ":1: expected 'source<TAB>target'",
        ),
        (load_sentence_pairs, SentencePairsConfig, ["...\tVe."], ""),  # punctuation is a token
        (
            load_word_pairs,
            WordPairsConfig,
            ["hello\thola", "\tgato"],
            ":2: expected 'source<TAB>target'",
        ),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, loader, config, lines, message):
    path = write(tmp_path, "bad.txt", lines)
    if not message:
        assert loader(config(path=path, valid_fraction=0, test_fraction=0), None).size("train") == 1
        return
    with pytest.raises(DataError) as e:
        loader(config(path=path), None)
    assert str(e.value).startswith(path) and message in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("loader", "config"),
    [
        (load_scan, ScanConfig),
        (load_sentence_pairs, SentencePairsConfig),
        (load_word_pairs, WordPairsConfig),
    ],
)
def test_empty_and_blank_files_are_data_errors(tmp_path, loader, config):
    for content in ("", "\n\n  \n"):
        path = tmp_path / "empty.txt"
        path.write_text(content)
        with pytest.raises(DataError, match=r"empty\.txt: no .* found \(empty file\?\)"):
            loader(config(path=str(path)), None)


def test_a_bad_byte_names_its_line_and_column(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"IN: jump OUT: I_JUMP\nIN: caf\xe9 OUT: I_JUMP\n")
    with pytest.raises(DataError) as e:
        load_scan(ScanConfig(path=str(path)), None)
    assert str(e.value) == f"{path}:2: not UTF-8 text (byte 0xe9 at column 8)"
    path.write_bytes(b"IN: jump OUT: I_JUMP\nIN: walk\x00 OUT: I_WALK\n")
    with pytest.raises(DataError) as e:
        load_scan(ScanConfig(path=str(path)), None)
    assert str(e.value) == f"{path}:2: contains a NUL byte: not a text file"
    dev = tmp_path / "dev.txt"
    dev.write_bytes(b"IN: jump OUT: I_JUMP\n\xff\n")
    train = write(tmp_path, "train.txt", SCAN_LINES)
    with pytest.raises(DataError, match=r"dev\.txt:2: not UTF-8 text \(byte 0xff at column 1\)"):
        load_scan(ScanConfig(path=train, dev_path=str(dev)), None)


def test_a_missing_file_or_no_path_at_all(tmp_path):
    missing = tmp_path / "missing.txt"
    with pytest.raises(DataError) as e:
        load_scan(ScanConfig(path=str(missing)), None)
    assert str(e.value) == f"{missing}: no such file"
    with pytest.raises(DataError, match="dataset 'scan' reads a file: give --data PATH"):
        load_scan(ScanConfig(), None)
    with pytest.raises(DataError, match="dataset 'sentence-pairs' reads a file"):
        load_sentence_pairs(SentencePairsConfig(), None)


def test_an_empty_dev_file_is_an_error_naming_it(tmp_path):
    train = write(tmp_path, "train.txt", SCAN_LINES)
    dev = tmp_path / "dev.txt"
    dev.write_text("")
    with pytest.raises(DataError, match=r"dev\.txt: no SCAN lines found"):
        load_scan(ScanConfig(path=train, dev_path=str(dev)), None)


def test_held_out_fractions_that_leave_no_training_pairs(tmp_path):
    path = write(tmp_path, "one.tsv", ["a\tb"])
    with pytest.raises(DataError, match="no training pairs left"):
        load_sentence_pairs(
            SentencePairsConfig(path=path, valid_fraction=0.5, test_fraction=0.5), None
        )


# ------------------------------------------------------------------------------- fuzzing
READERS = [
    (load_scan, ScanConfig, "\n".join(SCAN_LINES)),
    (load_sentence_pairs, SentencePairsConfig, "\n".join(ANKI_LINES)),
    (load_word_pairs, WordPairsConfig, "hello\thola\ncat\tgato\n"),
]
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _loads_or_data_error(loader, config, path):
    try:
        data = loader(config(path=str(path)), None)
    except DataError as e:
        assert str(e).startswith(str(path)) and "\n" not in str(e)
        return
    assert data.has("train")
    batch = data.collate(list(data.splits["train"])[:4])
    assert batch["src"].shape[0] == batch["tgt_out"].shape[0]


@pytest.mark.parametrize(("loader", "config", "_valid"), READERS)
@FUZZ
@given(raw=st.binary(max_size=300))
def test_random_bytes_load_or_raise_data_error(tmp_path, loader, config, _valid, raw):
    path = tmp_path / "fuzz.txt"
    path.write_bytes(raw)
    _loads_or_data_error(loader, config, path)


@pytest.mark.parametrize(("loader", "config", "valid"), READERS)
@FUZZ
@given(data=st.data())
def test_mutated_valid_files_load_or_raise_data_error(tmp_path, loader, config, valid, data):
    raw = bytearray(valid.encode("utf-8"))
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        at = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "insert" or not raw:
            raw[at:at] = data.draw(
                st.sampled_from([b"\t", b"\n", b" OUT: ", b"IN:", b"\xff", b"\x00", b"\r", b"\xc3"])
            )
        elif op == "flip":
            raw[at] = data.draw(st.integers(0, 255))
        else:
            del raw[at : at + data.draw(st.integers(1, 20))]
    path = tmp_path / "fuzz.txt"
    path.write_bytes(bytes(raw))
    _loads_or_data_error(loader, config, path)


# ------------------------------------------------------------------------------ real data
@pytest.mark.skipif(not SCAN.exists(), reason="../shared/data/scan is absent")
def test_real_scan_files_slice(tmp_path):
    with open(SCAN / "tasks_train_simple.txt", encoding="utf-8") as f:
        head = [next(f).rstrip("\n") for _ in range(200)]
    data = load_scan(ScanConfig(path=write(tmp_path, "head.txt", head)), None)
    assert data.size("train") == 200
    assert set(data.state["target"][4:]) <= {
        "I_WALK",
        "I_RUN",
        "I_JUMP",
        "I_LOOK",
        "I_TURN_LEFT",
        "I_TURN_RIGHT",
    }


def test_valid_min_target_length_holds_out_the_longer_outputs(tmp_path):
    path = write(tmp_path, "train.txt", SCAN_LINES)
    data = load_scan(ScanConfig(path=path, valid_min_target_length=2, concat_pairs=1.0), None)
    train, valid = plain(data.splits["train"]), plain(data.splits["valid"])
    assert sorted(len(t) - 2 for _, t, _ in valid) == [2, 2, 2, 3]
    # the one-action pair remains, and the joined pair is made of it alone
    assert [text for _, _, text in train] == ["I_JUMP", "I_JUMP I_JUMP"]
    assert data.state["max_target_length"] == 2
    with pytest.raises(DataError, match="valid_min_target_length"):
        load_scan(ScanConfig(path=path, valid_min_target_length=1), None)
