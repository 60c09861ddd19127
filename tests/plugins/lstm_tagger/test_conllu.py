"""The CoNLL-U reader and the `conllu` dataset: what counts as a word, and one-line errors."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zoo_plugins.lstm_tagger import conllu

import zoo
from zoo.core.errors import DataError

# Comments, a multiword token (3-4), an empty node (8.1 style, here 5.1), CRLF on one line.
SAMPLE = (
    "# newdoc id = t1\n"
    "# sent_id = 1\n"
    "# text = I can't go.\n"
    "1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_\n"
    "2\tca\tcan\tAUX\tMD\t_\t3\taux\t_\tSpaceAfter=No\n"
    "3-4\tgo.\t_\t_\t_\t_\t_\t_\t_\t_\n"
    "3\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_\n"
    "4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_\r\n"
    "4.1\tsaw\tsee\tVERB\tVBD\t_\t_\t_\t3:conj\t_\n"
    "\n"
    "# sent_id = 2\n"
    "1\tDogs\tdog\tNOUN\tNNS\t_\t2\tnsubj\t_\t_\n"
    "2\tbark\tbark\tVERB\tVBP\t_\t0\troot\t_\t_\n"
    "\n"
)


def write(tmp_path, text: str | bytes, name: str = "x.conllu"):
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8", newline="")
    else:
        path.write_bytes(text)
    return path


def test_words_skip_comments_ranges_and_empty_nodes(tmp_path):
    sentences = conllu.read(write(tmp_path, SAMPLE))
    assert [s.words for s in sentences] == [["I", "ca", "go", "."], ["Dogs", "bark"]]
    assert [s.tags for s in sentences] == [["PRON", "AUX", "VERB", "PUNCT"], ["NOUN", "VERB"]]
    xpos = conllu.read(write(tmp_path, SAMPLE), "xpos")
    assert xpos[0].tags == ["PRP", "MD", "VB", "."]


def test_a_file_without_a_final_blank_line_keeps_its_last_sentence(tmp_path):
    sentences = conllu.read(write(tmp_path, SAMPLE.rstrip("\n")))
    assert sentences[-1].words == ["Dogs", "bark"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1\tDogs\tdog\tNOUN\tNNS\t_\t2\tnsubj\t_", "expected 10 tab-separated columns"),
        ("1 Dogs dog NOUN NNS _ 2 nsubj _ _", "got 1"),
        ("x\tDogs\tdog\tNOUN\tNNS\t_\t2\tnsubj\t_\t_", "bad ID 'x'"),
        ("2\tDogs\tdog\tNOUN\tNNS\t_\t2\tnsubj\t_\t_", "word id 2 out of order: expected 1"),
        ("1\t\tdog\tNOUN\tNNS\t_\t2\tnsubj\t_\t_", "empty FORM"),
        ("1\tDogs\tdog\t_\tNNS\t_\t2\tnsubj\t_\t_", "no UPOS tag"),
        ("1-1\tDogs\tdog\t_\t_\t_\t_\t_\t_\t_", "multiword token range 1-1"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, line, message):
    path = write(tmp_path, "# sent_id = 9\n" + line + "\n\n")
    with pytest.raises(DataError, match=message) as err:
        conllu.read(path)
    assert str(err.value).startswith(f"{path}:2: ")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_a_file_without_words_is_an_error(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(DataError, match="no sentences") as err:
        conllu.read(path)
    assert str(err.value).startswith(f"{path}: ")


def test_bytes_that_are_not_utf8_name_the_line_and_column(tmp_path):
    path = write(tmp_path, SAMPLE.encode().replace(b"Dogs", b"D\xffgs"))
    with pytest.raises(DataError) as err:
        conllu.read(path)
    assert str(err.value) == f"{path}:12: not UTF-8 text (byte 0xff at column 4)"
    model = zoo.create("lstm-tagger", dataset="conllu", data=write(tmp_path, SAMPLE, "t.conllu"))
    with pytest.raises(DataError) as err:  # the same line through evaluation
        zoo.evaluate(model, path)
    assert str(err.value) == f"{path}:12: not UTF-8 text (byte 0xff at column 4)"


def test_a_byte_order_mark_is_read_past(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbf" + SAMPLE.encode())
    assert conllu.read(path)[0].words == ["I", "ca", "go", "."]


def test_cli_errors_are_one_line(zoo, tmp_path):
    bad = write(tmp_path, "1\tDogs\tdog\tNOUN\n\n", "bad.conllu")
    r = zoo("run", "lstm-tagger", "--dataset", "conllu", "--data", bad)
    assert r.code == 1
    assert (
        r.error_line()
        == f"Error: {bad}:1: expected 10 tab-separated columns (ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC), got 4"
    )
    r = zoo("run", "lstm-tagger", "--dataset", "conllu", "--data", tmp_path / "missing.conllu")
    assert r.code == 1 and "missing.conllu: no such file or folder" in r.error_line()
    r = zoo("run", "lstm-tagger", "--dataset", "conllu")
    assert r.code == 2 and "give --data TRAIN.conllu" in r.error_line()
    empty = write(tmp_path, "", "empty.conllu")
    r = zoo("run", "lstm-tagger", "--dataset", "conllu", "--data", empty)
    assert (
        r.code == 1
        and r.error_line()
        == f"Error: {empty}: no sentences: expected CoNLL-U word lines (ID FORM ... MISC)"
    )
    folder = tmp_path / "treebank"
    folder.mkdir()
    r = zoo("run", "lstm-tagger", "--dataset", "conllu", "--data", folder)
    assert r.code == 1 and "no *-ud-train.conllu" in r.error_line()


def test_a_treebank_folder_gives_train_dev_and_test(tmp_path):
    folder = tmp_path / "tb"
    folder.mkdir()
    for split in ("train", "dev", "test"):
        write(folder, SAMPLE, f"xx_tb-ud-{split}.conllu")
    model = zoo.create("lstm-tagger", dataset="conllu", data=folder, epochs=1)
    assert {s: model.data.size(s) for s in ("train", "valid", "test")} == {
        "train": 2,
        "valid": 2,
        "test": 2,
    }
    assert model.state["column"] == "upos" and "PRON" in model.state["tags"]
    assert "I" in model.state["chars"] and "i" in model.state["words"]  # chars keep case


@pytest.mark.slow
def test_eval_data_replaces_the_saved_dev_and_test_files(tmp_path):
    """Core: `zoo eval FILE --data NEW` evaluates NEW, not the --test file of training."""
    train = write(tmp_path, SAMPLE, "train.conllu")
    other = write(tmp_path, "1\tDogs\tdog\tNOUN\tNNS\t_\t0\troot\t_\t_\n\n", "other.conllu")
    result = zoo.run(
        "lstm-tagger",
        "conllu",
        train,
        dev=train,
        test=train,
        out=tmp_path / "m.safetensors",
        epochs=1,
    )
    assert result.metrics["test"]["words"] == 6
    assert zoo.evaluate(tmp_path / "m.safetensors")["words"] == 6  # its own test file
    assert zoo.evaluate(tmp_path / "m.safetensors", other)["words"] == 1


def test_another_file_is_evaluated_whole_and_the_own_file_as_split(tmp_path):
    """Held-out fractions of one training file: `zoo eval MODEL` scores the same held-out
    sentences again; `zoo eval MODEL --data OTHER` scores every sentence of OTHER."""
    sentences = [
        f"# sent_id = {i}\n1\tw{i}\t_\tNOUN\t_\t_\t0\troot\t_\t_\n"
        f"2\tbark\t_\tVERB\t_\t_\t1\tdep\t_\t_\n\n"
        for i in range(40)
    ]
    train = write(tmp_path, "".join(sentences), "train.conllu")
    other = write(tmp_path, "".join(sentences[:7]), "other.conllu")
    path = tmp_path / "m.safetensors"
    result = zoo.run(
        "lstm-tagger", "conllu", train, out=path, epochs=1, valid_fraction=0.25, test_fraction=0.2
    )
    model = result.model
    sizes = {s: model.data.size(s) for s in ("train", "valid", "test")}
    assert sizes == {"train": 22, "valid": 10, "test": 8}
    assert model.state["fingerprint"]
    assert zoo.evaluate(path)["words"] == 2 * 8 == result.metrics["test"]["words"]
    assert zoo.evaluate(path) == result.metrics["test"]
    assert zoo.evaluate(path, other)["words"] == 2 * 7
    assert zoo.evaluate(path, train)["words"] == 2 * 8  # the training file: its held-out test


def test_a_model_of_a_treebank_folder_scores_another_folders_test_file(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, copies in ((first, 1), (second, 2)):
        folder.mkdir()
        for split in ("train", "dev", "test"):
            write(folder, SAMPLE * copies, f"xx_tb-ud-{split}.conllu")
    model = zoo.create("lstm-tagger", dataset="conllu", data=first, epochs=1)
    assert zoo.evaluate(model, second)["words"] == 2 * 6
    assert zoo.evaluate(model, second, split="valid")["words"] == 2 * 6


# ------------------------------------------------------------------------------ fuzzing
def load_or_data_error(path) -> None:
    """The property: the reader either loads or raises zoo's DataError, nothing else."""
    try:
        conllu.read(path)
        conllu.read(path, "xpos", require_tags=False)
    except DataError as e:
        assert str(e).startswith(str(path))
        assert "\n" not in str(e).rstrip("\n") or "\n" in str(path)


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_load_or_raise_data_error(tmp_path, data):
    load_or_data_error(write(tmp_path, data))


@FUZZ
@given(st.data())
def test_mutated_valid_files_load_or_raise_data_error(tmp_path, data):
    raw = bytearray(SAMPLE.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["delete", "insert", "replace", "duplicate-line"]))
        at = data.draw(st.integers(0, len(raw) - 1)) if raw else 0
        if op == "delete" and raw:
            del raw[at : at + data.draw(st.integers(1, 8))]
        elif op == "insert":
            raw[at:at] = data.draw(
                st.sampled_from([b"\t", b"\n", b"-", b".", b"#", b"0", b"_", b"\xff", b"\r", b" "])
            )
        elif op == "replace" and raw:
            raw[at] = data.draw(st.integers(0, 255))
        else:
            lines = bytes(raw).split(b"\n")
            i = data.draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i])
            raw = bytearray(b"\n".join(lines))
    load_or_data_error(write(tmp_path, bytes(raw)))
