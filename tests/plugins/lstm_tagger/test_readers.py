"""Rows of docs/reliability.md about the lstm-tagger's readers through zoo's loader wrapper:
CoNLL-U treebanks (`conllu`) and pretrained word vectors; its evaluation files and its
`predict --input` reader."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import zoo
from tests.conftest import (
    CONLLU,
    FUZZ,
    file_contents,
    load_dataset,
    loads_or_data_error,
    predicts_or_zoo_error,
    write,
)
from zoo.core.errors import DataError

ALPHABET = "0123456789-._#\t\n\r ab"


@FUZZ
@given(data=st.data())
def test_conllu_loads_random_text_or_raises_data_error(data):
    content = data.draw(file_contents(ALPHABET))
    loads_or_data_error("conllu", "x.conllu", content)


def test_conllu_fuzzed_dataset_loads_a_valid_file(tmp_path):
    """Sanity for the property above: it would pass vacuously if every file were refused."""
    assert load_dataset("conllu", path=write(tmp_path, "x.conllu", CONLLU * 3)).has("train")


@pytest.mark.parametrize("option", ["dev_path", "test_path"])
def test_a_folder_where_a_file_belongs_is_named(tmp_path, option):
    paths = {"path": write(tmp_path, "x.conllu", CONLLU), option: tmp_path}
    with pytest.raises(DataError) as e:
        load_dataset("conllu", **paths)
    assert str(e.value) == f"{tmp_path}: is a folder, expected a file"


# ---------------------------------------------------------------------------------- CoNLL-U
@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "9" * 5000 + "\tDogs\tdog\tNOUN\tNNS\t_\t0\troot\t_\t_",
            "word id 99999999999999999999...",
        ),
        ("9" * 5000 + "x\tDogs\t_\t_\t_\t_\t_\t_\t_\t_", "bad ID '99999999999999999999...'"),
        ("9" * 5000 + "-1\tDogs\t_\t_\t_\t_\t_\t_\t_\t_", "does not start at the next word"),
    ],
)
def test_conllu_ids_too_long_for_int_are_data_errors(tmp_path, line, message):
    """int() refuses strings over 4300 digits (ValueError): ids are compared as text."""
    path = write(tmp_path, "x.conllu", "# c\n" + line + "\n\n")
    with pytest.raises(DataError, match=message) as e:
        load_dataset("conllu", path=path)
    assert str(e.value).startswith(f"{path}:2: ")
    assert len(str(e.value)) < 400


def test_conllu_a_long_multiword_range_is_still_a_range(tmp_path):
    path = write(
        tmp_path, "x.conllu", "1-" + "9" * 5000 + "\tDogs\t_\t_\t_\t_\t_\t_\t_\t_\n" + CONLLU
    )
    assert load_dataset("conllu", path=path).size("train") == 1


def test_conllu_a_file_of_ranges_and_empty_nodes_only_has_no_sentences(tmp_path):
    only = "# sent_id = 1\n1-2\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n0.1\tx\t_\t_\t_\t_\t_\t_\t_\t_\n\n"
    path = write(tmp_path, "x.conllu", only)
    with pytest.raises(DataError, match=r"x\.conllu: no sentences"):
        load_dataset("conllu", path=path)


def test_conllu_a_tag_with_spaces_names_the_line(tmp_path):
    path = write(tmp_path, "x.conllu", "1\tDogs\tdog\tNO UN\tNNS\t_\t0\troot\t_\t_\n\n")
    with pytest.raises(DataError, match=r"x\.conllu:1: UPOS tag 'NO UN' contains spaces"):
        load_dataset("conllu", path=path)


def test_conllu_a_treebank_folder_with_two_train_files_is_refused(tmp_path):
    for name in ("a-ud-train.conllu", "b-ud-train.conllu"):
        write(tmp_path, name, CONLLU)
    with pytest.raises(DataError, match="several \\*-ud-train.conllu files .*; give files"):
        load_dataset("conllu", path=tmp_path)


# ------------------------------------------------------------------ pretrained word vectors
def vectors(path: Path) -> dict[int, list[float]]:
    from zoo_plugins.lstm_tagger.vectors import read_vectors

    return read_vectors(path, {"the": 0, "dog": 1}, 2, str.lower)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"2 2\nthe 1 2\ndog 1 \xff\n", r"v\.txt:3: not UTF-8 text \(byte 0xff at column 7\)$"),
        (b"the 1 2\ndog 1 nan\n", r"v\.txt:2: 'dog' has a value that is not finite"),
        (b"the 1 2\ndog 1 inf\n", r"v\.txt:2: 'dog' has a value that is not finite"),
        (b"\n\n", r"v\.txt: no vectors"),
    ],
)
def test_vector_files_bad_bytes_and_values_name_the_line(tmp_path, content, message):
    with pytest.raises(DataError, match=message):
        vectors(write(tmp_path, "v.txt", content))


def test_vector_file_a_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="is a folder, expected a file") as e:
        vectors(tmp_path)
    assert str(e.value).startswith(f"{tmp_path}: ")


@FUZZ
@given(content=st.one_of(st.binary(max_size=200), st.text("2 the dog1.e-\n\r", max_size=200)))
def test_vector_files_load_or_raise_data_error(content):
    with tempfile.TemporaryDirectory() as folder:
        path = write(
            Path(folder), "v.txt", content.encode() if isinstance(content, str) else content
        )
        try:
            found = vectors(path)
        except DataError as e:
            assert str(e).startswith(str(path)) and "\n" not in str(e)
            return
    assert set(found) <= {0, 1} and all(len(v) == 2 for v in found.values())


# ------------------------------------------------------------ evaluation and --input files
@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A small untrained CoNLL-U tagger, saved."""
    folder = tmp_path_factory.mktemp("model")
    made = zoo.create(
        "lstm-tagger",
        "conllu",
        write(folder, "t.conllu", CONLLU),
        embedding_dim=4,
        char_hidden=4,
        char_dim=4,
        num_layers=1,
        hidden_size=4,
        epochs=1,
    )
    path = folder / "tagger.safetensors"
    zoo.save(made, path)
    return path


def test_tagger_evaluation_files_and_the_tag_column(zoo, tmp_path, model):
    """A gold tag the model does not know counts as a word it gets wrong; evaluating another
    tag column than the model learnt is refused."""
    other = write(tmp_path, "o.conllu", "1\tDogs\tdog\tFOO\tNNS\t_\t0\troot\t_\t_\n\n")
    r = zoo("eval", model, "--data", other, "--json")
    assert r.code == 0, r.stderr
    assert r.json()["metrics"]["words"] == 1 and r.json()["metrics"]["accuracy"] == 0
    r = zoo("eval", model, "--data", other, "--set", "column=xpos")
    assert r.code == 2 and r.error_line() == (
        "Error: --set column=xpos: the model was trained on the UPOS column; use column=upos"
    )


@FUZZ
@given(data=st.data())
def test_predict_file_reader_gives_output_or_a_zoo_error(model, data):
    """`zoo predict --input` on any file: predictions, or DataError/UsageError, nothing else."""
    content = data.draw(
        st.one_of(st.text(alphabet=ALPHABET, max_size=300).map(str.encode), st.binary(max_size=200))
    )
    predicts_or_zoo_error(model, "in.txt", content)
