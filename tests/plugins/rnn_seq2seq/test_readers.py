"""Rows of docs/reliability.md about the rnn-seq2seq datasets' readers (`scan`,
`sentence-pairs`, `word-pairs`) through zoo's loader wrapper, and its `predict --input`."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import zoo
from tests.conftest import (
    FUZZ,
    file_contents,
    load_dataset,
    loads_or_data_error,
    predicts_or_zoo_error,
    write,
)
from zoo.core.errors import DataError

# Each dataset with a sample of the characters its format is made of, so that random text
# reaches the parsers (random bytes mostly stop at the UTF-8 check).
DATASETS = {
    "scan": ("x.txt", "IN:OUT jumpl_JUMP\t\n\r"),
    "sentence-pairs": ("x.tsv", "Go. ¡Ve!¿’'\t\n\r"),
    "word-pairs": ("x.tsv", "ab \t\n\r"),
}
VALID = {
    "scan": "IN: jump OUT: I_JUMP\nIN: jump twice OUT: I_JUMP I_JUMP\n",
    "sentence-pairs": "Go.\tVe.\nRun!\t¡Corre!\n",
    "word-pairs": "cat\tgato\ndog\tperro\n",
}


@pytest.mark.parametrize("dataset", sorted(DATASETS))
@FUZZ
@given(data=st.data())
def test_every_dataset_loads_random_text_or_raises_data_error(dataset, data):
    name, alphabet = DATASETS[dataset]
    content = data.draw(file_contents(alphabet))
    loads_or_data_error(dataset, name, content)


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_the_fuzzed_datasets_load_a_valid_file(tmp_path, dataset):
    """Sanity for the property above: it would pass vacuously if every file were refused."""
    name = DATASETS[dataset][0]
    assert load_dataset(dataset, path=write(tmp_path, name, VALID[dataset])).has("train")


@pytest.mark.parametrize(
    ("dataset", "option"),
    [("scan", "path"), ("scan", "dev_path"), ("sentence-pairs", "test_path")],
)
def test_a_folder_where_a_file_belongs_is_named(tmp_path, dataset, option):
    name = DATASETS[dataset][0]
    paths = {"path": write(tmp_path, name, VALID[dataset]), option: tmp_path}
    with pytest.raises(DataError) as e:
        load_dataset(dataset, **paths)
    assert str(e.value) == f"{tmp_path}: is a folder, expected a file"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A small untrained sentence translator, saved."""
    folder = tmp_path_factory.mktemp("model")
    pairs = write(folder, "p.tsv", "Go.\tVe.\n")
    made = zoo.create("rnn-seq2seq", "sentence-pairs", pairs, hidden_size=4, epochs=1)
    path = folder / "seq2seq.safetensors"
    zoo.save(made, path)
    return path


@FUZZ
@given(data=st.data())
def test_predict_file_reader_gives_output_or_a_zoo_error(model, data):
    """`zoo predict --input` on any file: predictions, or DataError/UsageError, nothing else."""
    content = data.draw(
        st.one_of(
            st.text(alphabet="Go. Ve\t\n\r", max_size=300).map(str.encode), st.binary(max_size=200)
        )
    )
    predicts_or_zoo_error(model, "in.txt", content)
