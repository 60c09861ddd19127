"""Rows of docs/reliability.md about the files zoo itself handles for every plugin: the net
`zoo.api.load_data` spreads under each dataset's loader, `zoo predict --input`/`--output`,
`zoo gates`, and the settings `zoo.load(config=...)` takes. The readers of each built-in
dataset are tested in tests/plugins/<plugin>/test_readers.py."""

from __future__ import annotations

import pytest

import zoo
from tests.conftest import CONLLU, CSV_SMALL, SERIES, scripted_registry, write
from zoo.api import load_data
from zoo.core.errors import DataError, SettingError


# ------------------------------------------------------------------ zoo.api.load_data
@pytest.mark.parametrize(
    ("error", "message"),
    [
        (PermissionError(13, "Permission denied", "X"), "X: permission denied"),
        (FileNotFoundError(2, "No such file or directory", "X"), "X: no such file"),
        (IsADirectoryError(21, "Is a directory", "X"), "X: is a folder, expected a file"),
        (OSError(5, "Input/output error", "X"), "X: cannot read (Input/output error)"),
    ],
)
def test_load_data_names_the_path_of_a_reader_file_system_error(error, message):
    """zoo.api.load_data's net under every reader (simulated: the tests run as root, for whom
    permissions do not apply)."""

    def fail(config, state):
        raise error

    registry, _ = scripted_registry(loader=fail)
    with pytest.raises(DataError) as e:
        load_data(registry, "toy", None, None)
    assert str(e.value) == message


def test_load_data_a_reader_reading_a_missing_file_names_it(tmp_path):
    def read(config, state):
        with open(tmp_path / "gone.txt", "rb") as f:
            return f.read()

    registry, _ = scripted_registry(loader=read)
    with pytest.raises(DataError) as e:
        load_data(registry, "toy", None, None)
    assert str(e.value) == f"{tmp_path / 'gone.txt'}: no such file"


def test_load_data_a_reader_decoding_bytes_itself_still_names_the_data():
    """Readers should decode through zoo.textfile, which names the line and column; a reader
    that lets UnicodeDecodeError escape still gets one line about the data, not a traceback."""

    def decode(config, state):
        return b"ab\xff".decode("utf-8")

    registry, _ = scripted_registry(loader=decode, name="shaky", distribution="zoo-shaky")
    with pytest.raises(DataError) as e:
        load_data(registry, "toy", None, None)
    assert str(e.value) == "toy: not UTF-8 text (invalid start byte at byte 2)"


# ------------------------------------------------------------------- zoo.load(config=...)
def test_load_config_values_are_checked_like_settings(tmp_path):
    model = zoo.create("elman-rnn", "char-pairs", hidden_size=4, epochs=1)
    path = tmp_path / "m.safetensors"
    zoo.save(model, path)
    with pytest.raises(SettingError, match=r"^impl='numpy' is not valid; expected torch\|cells"):
        zoo.load(path, config={"impl": "numpy"})
    with pytest.raises(SettingError, match="^hidden_size='big' is not valid; expected int"):
        zoo.load(path, config={"hidden_size": "big"})
    with pytest.raises(zoo.UsageError, match="expected a dict of settings"):
        zoo.load(path, config="impl=cells")


# ----------------------------------------------------------------- predict --input files
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Small untrained models of the four architectures: three read structured --input files
    (CoNLL-U, CSV) or override nothing (seq2seq, the char-pairs Elman RNN)."""
    folder = tmp_path_factory.mktemp("models")
    tiny = {"hidden_size": 4, "epochs": 1}
    made = {
        "tagger": zoo.create(
            "lstm-tagger",
            "conllu",
            write(folder, "t.conllu", CONLLU),
            embedding_dim=4,
            char_hidden=4,
            char_dim=4,
            num_layers=1,
            **tiny,
        ),
        "seq2seq": zoo.create(
            "rnn-seq2seq", "sentence-pairs", write(folder, "p.tsv", "Go.\tVe.\n"), **tiny
        ),
        "csv": zoo.create("gru-regressor", "csv", write(folder, "s.csv", SERIES), **CSV_SMALL, **tiny),
        "elman": zoo.create("elman-rnn", "char-pairs", **tiny),
    }  # fmt: skip
    paths = {}
    for name, model in made.items():
        paths[name] = folder / f"{name}.safetensors"
        zoo.save(model, paths[name])
    return paths


NAMES = ["tagger", "seq2seq", "csv", "elman"]


@pytest.mark.parametrize("name", NAMES)
def test_predict_input_missing_or_a_folder_is_a_usage_error(zoo, tmp_path, models, name):
    """zoo reads every --input file, whatever reads its lines afterwards."""
    r = zoo("predict", models[name], "--input", tmp_path / "nope.txt")
    assert r.code == 2 and r.error_line() == f"Error: --input {tmp_path / 'nope.txt'}: no such file"
    r = zoo("predict", models[name], "--input", tmp_path)
    assert r.code == 2
    assert r.error_line() == f"Error: --input {tmp_path}: is a folder, expected a file"


@pytest.mark.parametrize("name", NAMES)
def test_predict_input_bad_bytes_name_line_and_column(zoo, tmp_path, models, name):
    bad = write(tmp_path, "bad.txt", b"Dogs bark\nDogs b\xffrk\n")
    r = zoo("predict", models[name], "--input", bad)
    assert r.code == 2
    assert r.error_line() == f"Error: --input {bad}:2: not UTF-8 text (byte 0xff at column 7)"


def test_predict_input_empty_files(zoo, tmp_path, models):
    empty = write(tmp_path, "empty.txt", b"")
    for name in ("tagger", "seq2seq", "elman"):  # no lines in, no lines out
        out = tmp_path / f"{name}.out"
        r = zoo("predict", models[name], "--input", empty, "--output", out)
        assert r.code == 0 and out.read_bytes() == b"" and r.stdout == "", name
    r = zoo("predict", models["csv"], "--input", empty)
    assert r.code == 1 and "empty.txt: the file is empty" in r.error_line()


def test_predict_input_one_output_line_per_input_line(zoo, tmp_path, models):
    """Where zoo reads the lines itself: blank lines stay blank, so the output lines up."""
    good = write(tmp_path, "in.txt", "hello\n\nhell\n")
    r = zoo("predict", models["elman"], "--input", good)
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 3 and lines[1] == "" and lines[0] and lines[2]


def test_predict_output_in_a_missing_folder_is_refused_before_loading(zoo, tmp_path):
    out = tmp_path / "no" / "out.txt"
    r = zoo("predict", tmp_path / "not-even-a-model.safetensors", "x", "--output", out)
    assert r.code == 2 and "--output" in r.error_line() and "does not exist" in r.error_line()


# ------------------------------------------------------------------------------ zoo gates
def test_gates_mistakes_are_one_line(zoo, tmp_path, models):
    model = models["elman"]
    r = zoo("gates", tmp_path / "nope.safetensors", "hello")
    assert r.code == 1 and "nope.safetensors: no such model file" in r.error_line()
    r = zoo("gates", model, "hello", "--out", tmp_path / "no" / "such" / "g.png")
    assert r.code == 2 and "folder" in r.error_line() and "does not exist" in r.error_line()
    r = zoo("gates", models["tagger"], "   ", "--out", tmp_path / "g.png")
    assert r.code == 2 and "input 1 is empty" in r.error_line()
    r = zoo("gates", models["tagger"], "Dogs", "--set", "nope=1", "--out", tmp_path / "g.png")
    assert r.code == 2 and "unknown setting 'nope'" in r.error_line()
    r = zoo("gates", model, "hello", "--out", tmp_path)
    assert r.code == 2 and "is a directory" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "g.png").exists()
    r = zoo("gates", models["csv"], "1 2 3 4", "--out", tmp_path / "g.png")
    assert r.code == 0 and (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
