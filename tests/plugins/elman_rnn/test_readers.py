"""Rows of docs/reliability.md about the elman-rnn datasets' readers (`text`, `char-pairs`)
through zoo's loader wrapper, as `zoo run` reads them: random text and bytes, folders, bad
lines, fractions that leave nothing to train on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import zoo
from tests.conftest import FUZZ, file_contents, load_dataset, loads_or_data_error, write
from zoo.core.errors import DataError

# Each dataset with a sample of the characters its format is made of, so that random text
# reaches the parsers (random bytes mostly stop at the UTF-8 check).
DATASETS = {"text": ("x.txt", "# text=ab\t\n\r"), "char-pairs": ("x.tsv", "abc \t\n\r")}
VALID = {"text": "To be, or not to be\n", "char-pairs": "abc\tcba\n"}


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


@pytest.mark.parametrize(("dataset", "option"), [("text", "dev_path"), ("char-pairs", "path")])
def test_a_folder_where_a_file_belongs_is_named(tmp_path, dataset, option):
    name = DATASETS[dataset][0]
    paths = {"path": write(tmp_path, name, VALID[dataset]), option: tmp_path}
    with pytest.raises(DataError) as e:
        load_dataset(dataset, **paths)
    assert str(e.value) == f"{tmp_path}: is a folder, expected a file"


# -------------------------------------------------------------------------------- char-pairs
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"ab\tba\nabc\n", r"x\.tsv:2: expected 'input<TAB>target'"),
        (b"ab\tba\r\n\r\nabc\tab\r\n", r"x\.tsv:3: input and target must have the same"),
        (b"ab\tba\rab\tb\r", r"x\.tsv:2: input and target must have the same"),
        (b"ab\tba\n" * 3000 + b"a\xffb\tabc\n", r"x\.tsv:3001: not UTF-8 text \(byte 0xff at column 2\)$"),
        (b"", r"x\.tsv: no pairs found \(empty file\?\)"),
        (b"\n \n\t\r\n", r"x\.tsv: no pairs found"),
    ],
)  # fmt: skip
def test_char_pairs_bad_files_name_file_and_line(tmp_path, content, message):
    """The file is decoded whole: a bad byte is named by its line and its column (reading in
    text mode named an offset inside an 8 KiB decoding chunk, and no line)."""
    with pytest.raises(DataError, match=message):
        load_dataset("char-pairs", path=write(tmp_path, "x.tsv", content))


def test_char_pairs_fractions_that_leave_no_training_pair(tmp_path):
    path = write(tmp_path, "x.tsv", "ab\tba\n")
    with pytest.raises(DataError, match=r"x\.tsv: the training split is empty"):
        zoo.create(
            "elman-rnn", "char-pairs", data=path, valid_fraction=0.5, test_fraction=0.5, epochs=1
        )


def test_char_pairs_missing_file(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("char-pairs", path=tmp_path / "nope.tsv")
    assert str(e.value) == f"{tmp_path / 'nope.tsv'}: no such file"
