"""Rows of docs/reliability.md that the readers' own test files leave open: every file-reading
dataset fuzzed through zoo's loader wrapper, the `predict --input` readers fuzzed, and the
cases that used to escape as plugin failures (a traceback's worth of text in one line)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zoo
from zoo import config as cfg
from zoo.api import load_data
from zoo.errors import DataError, UsageError
from zoo.registry import get_registry

CONLLU = (
    "# text = Dogs bark.\n"
    "1\tDogs\tdog\tNOUN\tNNS\t_\t2\tnsubj\t_\t_\n"
    "2\tbark\tbark\tVERB\tVBP\t_\t0\troot\t_\t_\n"
    "3\t.\t.\tPUNCT\t.\t_\t2\tpunct\t_\t_\n"
    "\n"
)
SERIES = "date,v\n" + "".join(f"2020-01-01 {h:02d}:00:00,{h % 5}\n" for h in range(24))
CSV_SMALL = {"input_length": 4, "horizon": 2, "split": "0.5,0.25,0.25"}


def data_config(dataset: str, **values):
    spec = get_registry().dataset(dataset).spec
    return cfg.build(spec.config, {k: str(v) for k, v in values.items()}, where="--set")


def load(dataset: str, state=None, **values):
    """The dataset loaded as `zoo run` loads it: file-system errors become DataErrors and any
    other exception a PluginError, which every test here counts as a failure."""
    return load_data(get_registry(), dataset, data_config(dataset, **values), state)


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


# ------------------------------------------------------------ every file-reading dataset
# Each dataset with a sample of the characters its format is made of, so that random text
# reaches the parsers (random bytes mostly stop at the UTF-8 check).
DATASETS = {
    "conllu": ("x.conllu", "0123456789-._#\t\n\r ab", {}),
    "scan": ("x.txt", "IN:OUT jumpl_JUMP\t\n\r", {}),
    "sentence-pairs": ("x.tsv", "Go. ¡Ve!¿’'\t\n\r", {}),
    "word-pairs": ("x.tsv", "ab \t\n\r", {}),
    "csv": ("x.csv", 'date,v0123456789.-: e"\n\r', CSV_SMALL),
    "text": ("x.txt", "# text=ab\t\n\r", {}),
    "char-pairs": ("x.tsv", "abc \t\n\r", {}),
}
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def loads_or_data_error(dataset: str, content: bytes, state=None) -> None:
    name, _, values = DATASETS[dataset]
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder), name, content)
        try:
            data = load(dataset, state, path=path, **values)
        except DataError as e:
            assert str(e).startswith(str(path)) and "\n" not in str(e), str(e)
            return
        assert data.has("train") or state is not None


@pytest.mark.parametrize("dataset", sorted(DATASETS))
@FUZZ
@given(data=st.data())
def test_every_dataset_loads_random_text_or_raises_data_error(dataset, data):
    alphabet = DATASETS[dataset][1]
    content = data.draw(
        st.one_of(
            st.text(alphabet=alphabet, max_size=300).map(lambda s: s.encode("utf-8")),
            st.binary(max_size=200),
        )
    )
    loads_or_data_error(dataset, content)


def test_the_fuzzed_datasets_load_a_valid_file(tmp_path):
    """Sanity for the property above: it would pass vacuously if every file were refused."""
    files = {
        "conllu": CONLLU * 3,
        "scan": "IN: jump OUT: I_JUMP\nIN: jump twice OUT: I_JUMP I_JUMP\n",
        "sentence-pairs": "Go.\tVe.\nRun!\t¡Corre!\n",
        "word-pairs": "cat\tgato\ndog\tperro\n",
        "csv": SERIES,
        "text": "To be, or not to be\n",
        "char-pairs": "abc\tcba\n",
    }
    for dataset, text in files.items():
        name, _, values = DATASETS[dataset]
        data = load(dataset, path=write(tmp_path, name, text), **values)
        assert data.has("train"), dataset


@pytest.mark.parametrize(
    ("dataset", "name", "content", "option"),
    [
        ("conllu", "x.conllu", CONLLU, "dev_path"),
        ("conllu", "x.conllu", CONLLU, "test_path"),
        ("scan", "x.txt", "IN: jump OUT: I_JUMP\n", "path"),
        ("scan", "x.txt", "IN: jump OUT: I_JUMP\n", "dev_path"),
        ("sentence-pairs", "x.tsv", "Go.\tVe.\n", "test_path"),
        ("text", "x.txt", "To be\n", "dev_path"),
        ("char-pairs", "x.tsv", "ab\tba\n", "path"),
        ("csv", "x.csv", SERIES, "path"),
    ],
)
def test_a_folder_where_a_file_belongs_is_named(tmp_path, dataset, name, content, option):
    paths = {"path": write(tmp_path, name, content), option: tmp_path}
    with pytest.raises(DataError, match=r"is a folder, expected a (text )?file$") as e:
        load(dataset, **paths)
    assert str(e.value).startswith(f"{tmp_path}: ")


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (PermissionError(13, "Permission denied", "X"), "X: permission denied"),
        (FileNotFoundError(2, "No such file or directory", "X"), "X: no such file or folder"),
        (IsADirectoryError(21, "Is a directory", "X"), "X: is a folder, expected a file"),
        (
            UnicodeDecodeError("utf-8", b"ab\xff", 2, 3, "invalid start byte"),
            "{path}: not UTF-8 text (invalid start byte at byte 2)",
        ),
    ],
)
def test_load_data_names_the_path_of_a_reader_file_system_error(
    tmp_path, monkeypatch, error, message
):
    """zoo.api.load_data's net under every reader (simulated: the tests run as root, for whom
    permissions do not apply)."""
    from zoo_plugins.rnn_seq2seq import data as seq2seq_data

    def fail(path):
        raise error

    monkeypatch.setattr(seq2seq_data, "read_bytes", fail)
    path = write(tmp_path, "x.txt", "IN: jump OUT: I_JUMP\n")
    with pytest.raises(DataError) as e:
        load("scan", path=path)
    assert str(e.value) == message.format(path=path)


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
        load("conllu", path=path)
    assert str(e.value).startswith(f"{path}:2: ")
    assert len(str(e.value)) < 400


def test_conllu_a_long_multiword_range_is_still_a_range(tmp_path):
    path = write(
        tmp_path, "x.conllu", "1-" + "9" * 5000 + "\tDogs\t_\t_\t_\t_\t_\t_\t_\t_\n" + CONLLU
    )
    assert load("conllu", path=path).size("train") == 1


def test_conllu_a_file_of_ranges_and_empty_nodes_only_has_no_sentences(tmp_path):
    only = "# sent_id = 1\n1-2\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n0.1\tx\t_\t_\t_\t_\t_\t_\t_\t_\n\n"
    path = write(tmp_path, "x.conllu", only)
    with pytest.raises(DataError, match=r"x\.conllu: no sentences"):
        load("conllu", path=path)


def test_conllu_a_tag_with_spaces_names_the_line(tmp_path):
    path = write(tmp_path, "x.conllu", "1\tDogs\tdog\tNO UN\tNNS\t_\t0\troot\t_\t_\n\n")
    with pytest.raises(DataError, match=r"x\.conllu:1: UPOS tag 'NO UN' contains spaces"):
        load("conllu", path=path)


def test_conllu_a_treebank_folder_with_two_train_files_is_refused(tmp_path):
    for name in ("a-ud-train.conllu", "b-ud-train.conllu"):
        write(tmp_path, name, CONLLU)
    with pytest.raises(DataError, match="several \\*-ud-train.conllu files .*; give files"):
        load("conllu", path=tmp_path)


# ------------------------------------------------------------------ pretrained word vectors
def vectors(path: Path) -> dict[int, list[float]]:
    from zoo_plugins.lstm_tagger.vectors import read_vectors

    return read_vectors(path, {"the": 0, "dog": 1}, 2, str.lower)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"2 2\nthe 1 2\ndog 1 \xff\n", r"v\.txt:3: not UTF-8 text"),
        (b"the 1 2\ndog 1 nan\n", r"v\.txt:2: 'dog' has a value that is not finite"),
        (b"the 1 2\ndog 1 inf\n", r"v\.txt:2: 'dog' has a value that is not finite"),
        (b"\n\n", r"v\.txt: no vectors"),
    ],
)
def test_vector_files_bad_bytes_and_values_name_the_line(tmp_path, content, message):
    with pytest.raises(DataError, match=message):
        vectors(write(tmp_path, "v.txt", content))


def test_vector_file_a_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="pretrained_vectors: is a folder, expected a file"):
        vectors(tmp_path)


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


# -------------------------------------------------------------------------------- char-pairs
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"ab\tba\nabc\n", r"x\.tsv:2: expected 'input<TAB>target'"),
        (b"ab\tba\r\n\r\nabc\tab\r\n", r"x\.tsv:3: input and target must have the same"),
        (b"ab\tba\rab\tb\r", r"x\.tsv:2: input and target must have the same"),
        (b"ab\tba\n" * 3000 + b"a\xffb\tabc\n", r"x\.tsv:3001: not UTF-8 text \(byte 0xff at offset 18001\)"),
        (b"", r"x\.tsv: no pairs found \(empty file\?\)"),
        (b"\n \n\t\r\n", r"x\.tsv: no pairs found"),
    ],
)  # fmt: skip
def test_char_pairs_bad_files_name_file_and_line(tmp_path, content, message):
    """The file is decoded whole: a bad byte is named by its line and its offset in the file
    (reading in text mode named an offset inside an 8 KiB decoding chunk, and no line)."""
    with pytest.raises(DataError, match=message):
        load("char-pairs", path=write(tmp_path, "x.tsv", content))


def test_char_pairs_fractions_that_leave_no_training_pair(tmp_path):
    path = write(tmp_path, "x.tsv", "ab\tba\n")
    with pytest.raises(DataError, match=r"x\.tsv: the training split is empty"):
        zoo.create(
            "elman-rnn", "char-pairs", data=path, valid_fraction=0.5, test_fraction=0.5, epochs=1
        )


def test_char_pairs_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.tsv: no such file or folder$"):
        load("char-pairs", path=tmp_path / "nope.tsv")


def test_csv_syntax_errors_name_file_and_line(tmp_path):
    path = write(tmp_path, "x.csv", "a,b\n1,2\n3," + "9" * 200_000 + "\n")
    with pytest.raises(DataError, match=r"x\.csv:3: not valid CSV \(field larger than"):
        load("csv", path=path)


# ------------------------------------------------------------------- zoo.load(config=...)
def test_load_config_values_are_checked_like_settings(tmp_path):
    model = zoo.create("elman-rnn", "char-pairs", hidden_size=4, epochs=1)
    path = tmp_path / "m.safetensors"
    zoo.save(model, path)
    with pytest.raises(UsageError, match="impl='numpy' is not valid; expected torch|cells"):
        zoo.load(path, config={"impl": "numpy"})
    with pytest.raises(UsageError, match="hidden_size='big' is not valid; expected int"):
        zoo.load(path, config={"hidden_size": "big"})
    with pytest.raises(UsageError, match="expected a dict of settings"):
        zoo.load(path, config="impl=cells")


# ----------------------------------------------------------------- predict --input files
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Small untrained models of the three architectures that read --input files themselves,
    and one that leaves --input to zoo (the char-pairs Elman RNN)."""
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


@pytest.mark.parametrize("name", ["tagger", "seq2seq", "csv"])
def test_predict_input_missing_or_a_folder_is_a_usage_error(zoo, tmp_path, models, name):
    r = zoo("predict", models[name], "--input", tmp_path / "nope.txt")
    assert (
        r.code == 2 and r.error_line() == f"Error: --input '{tmp_path / 'nope.txt'}': no such file"
    )
    r = zoo("predict", models[name], "--input", tmp_path)
    assert r.code == 2 and r.error_line() == f"Error: --input '{tmp_path}': is a folder"


def test_predict_input_read_by_zoo_itself(zoo, tmp_path, models):
    """Architectures without predict_file: zoo reads one input a line."""
    model = models["elman"]
    r = zoo("predict", model, "--input", tmp_path / "nope.txt")
    assert r.code == 2 and "nope.txt': no such file" in r.error_line()
    r = zoo("predict", model, "--input", tmp_path)
    assert r.code == 2 and "is a folder" in r.error_line()
    bad = write(tmp_path, "bad.txt", b"hello\nh\xffllo\n")
    r = zoo("predict", model, "--input", bad)
    assert r.code == 2 and f"--input '{bad}': line 2: not UTF-8 text (byte 7)" in r.error_line()
    empty = write(tmp_path, "empty.txt", b"")
    r = zoo("predict", model, "--input", empty)
    assert r.code == 0 and r.stdout == ""
    good = write(tmp_path, "in.txt", "hello\nhell\n")
    r = zoo("predict", model, "--input", good)
    assert r.code == 0 and len(r.stdout.splitlines()) == 2


def test_predict_input_bad_bytes_and_empty_files(zoo, tmp_path, models):
    bad = write(tmp_path, "bad.txt", b"Dogs bark\nDogs b\xffrk\n")
    for name in ("tagger", "seq2seq", "csv"):
        r = zoo("predict", models[name], "--input", bad)
        assert r.code == 1 and f"Error: {bad}:2: not UTF-8 text" in r.error_line(), name
    empty = write(tmp_path, "empty.txt", b"")
    for name in ("tagger", "seq2seq"):  # no lines in, no lines out
        r = zoo("predict", models[name], "--input", empty, "--output", tmp_path / f"{name}.out")
        assert r.code == 0 and (tmp_path / f"{name}.out").read_bytes() == b"", name
    r = zoo("predict", models["csv"], "--input", empty)
    assert r.code == 1 and "empty.txt: the file is empty" in r.error_line()


def test_predict_output_in_a_missing_folder_is_refused_before_loading(zoo, tmp_path):
    out = tmp_path / "no" / "out.txt"
    r = zoo("predict", tmp_path / "not-even-a-model.safetensors", "x", "--output", out)
    assert r.code == 2 and "--output" in r.error_line() and "does not exist" in r.error_line()


def test_tagger_evaluation_files_and_the_tag_column(zoo, tmp_path, models):
    """A gold tag the model does not know counts as a word it gets wrong; evaluating another
    tag column than the model learnt is refused."""
    other = write(tmp_path, "o.conllu", "1\tDogs\tdog\tFOO\tNNS\t_\t0\troot\t_\t_\n\n")
    r = zoo("eval", models["tagger"], "--data", other, "--json")
    assert r.code == 0, r.stderr
    assert r.json()["metrics"]["words"] == 1 and r.json()["metrics"]["accuracy"] == 0
    r = zoo("eval", models["tagger"], "--data", other, "--set", "column=xpos")
    assert r.code == 2 and "trained on the UPOS column; --set column=upos" in r.error_line()


def test_predict_csv_forecast_past_year_9999_is_a_data_error(zoo, tmp_path, models):
    late = write(
        tmp_path, "late.csv", "date,v\n" + "".join(f"9999-12-31 {h}:00:00,1\n" for h in range(20, 24))
    )  # fmt: skip
    r = zoo("predict", models["csv"], "--input", late)
    assert r.code == 1
    assert r.error_line() == (
        f"Error: {late}:5: column 'date': the forecast times after 9999-12-31 23:00:00 pass "
        "the latest date there is (9999-12-31)"
    )


@functools.cache
def loaded(path: Path):
    return zoo.load(path)


PREDICT_ALPHABETS = {
    "tagger": "0123456789-._#\t\n\r ab",
    "seq2seq": "Go. Ve\t\n\r",
    "csv": 'date,v0123456789.-: e"\n\r',
}


@pytest.mark.parametrize("name", sorted(PREDICT_ALPHABETS))
@FUZZ
@given(data=st.data())
def test_predict_file_readers_give_output_or_a_zoo_error(models, name, data):
    """`zoo predict --input` on any file: predictions, or DataError/UsageError, nothing else."""
    content = data.draw(
        st.one_of(
            st.text(alphabet=PREDICT_ALPHABETS[name], max_size=300).map(str.encode),
            st.binary(max_size=200),
        )
    )
    model = loaded(models[name])
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder), "in.txt", content)
        try:
            with torch.no_grad():
                text, predictions = model.impl.predict_file(
                    model.module, str(path), model.state, model.task, None
                )
        except (DataError, UsageError) as e:
            assert "\n" not in str(e) and str(path) in str(e), str(e)
            return
    assert isinstance(text, str) and isinstance(predictions, list)


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
