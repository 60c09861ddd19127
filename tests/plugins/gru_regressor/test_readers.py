"""Rows of docs/reliability.md about the gru-regressor's CSV reader (`csv`) through zoo's
loader wrapper, and its `predict --input` CSV reader."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import zoo
from tests.conftest import (
    CSV_SMALL,
    FUZZ,
    SERIES,
    file_contents,
    load_dataset,
    loads_or_data_error,
    predicts_or_zoo_error,
    write,
)
from zoo.core.errors import DataError

ALPHABET = 'date,v0123456789.-: e"\n\r'


@FUZZ
@given(data=st.data())
def test_csv_loads_random_text_or_raises_data_error(data):
    content = data.draw(file_contents(ALPHABET))
    loads_or_data_error("csv", "x.csv", content, **CSV_SMALL)


def test_csv_fuzzed_dataset_loads_a_valid_file(tmp_path):
    """Sanity for the property above: it would pass vacuously if every file were refused."""
    assert load_dataset("csv", path=write(tmp_path, "x.csv", SERIES), **CSV_SMALL).has("train")


def test_a_folder_where_a_file_belongs_is_named(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("csv", path=tmp_path, **CSV_SMALL)
    assert str(e.value) == f"{tmp_path}: is a folder, expected a file"


def test_csv_syntax_errors_name_file_and_line(tmp_path):
    path = write(tmp_path, "x.csv", "a,b\n1,2\n3," + "9" * 200_000 + "\n")
    with pytest.raises(DataError, match=r"x\.csv:3: not valid CSV \(field larger than"):
        load_dataset("csv", path=path)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A small untrained CSV forecaster, saved."""
    folder = tmp_path_factory.mktemp("model")
    made = zoo.create(
        "gru-regressor", "csv", write(folder, "s.csv", SERIES), hidden_size=4, epochs=1, **CSV_SMALL
    )
    path = folder / "csv.safetensors"
    zoo.save(made, path)
    return path


def test_predict_csv_forecast_past_year_9999_is_a_data_error(zoo, tmp_path, model):
    late = write(
        tmp_path, "late.csv", "date,v\n" + "".join(f"9999-12-31 {h}:00:00,1\n" for h in range(20, 24))
    )  # fmt: skip
    r = zoo("predict", model, "--input", late)
    assert r.code == 1
    assert r.error_line() == (
        f"Error: {late}:5: column 'date': the forecast times after 9999-12-31 23:00:00 pass "
        "the latest date there is (9999-12-31)"
    )


@FUZZ
@given(data=st.data())
def test_predict_file_reader_gives_output_or_a_zoo_error(model, data):
    """`zoo predict --input` on any file: predictions, or DataError/UsageError, nothing else."""
    content = data.draw(
        st.one_of(st.text(alphabet=ALPHABET, max_size=300).map(str.encode), st.binary(max_size=200))
    )
    predicts_or_zoo_error(model, "in.csv", content)
