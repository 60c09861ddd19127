"""Whatever text, bytes or numbers reach a runtime model, it answers or raises one
RuntimeZooError line: never another exception, never a numpy warning; and the runtime's twins
of zoo's readers (text files, numbers, CSV series) give zoo's answers and zoo's error lines.
Hypothesis, with a fixed derivation of its examples (derandomize) so that CI cannot flake."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import zoo_runtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zoo_runtime import files as runtime_files

from tests.runtime.conftest import KINDS

EXAMPLES = 60
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
# The twins of zoo's readers are pure Python, a millisecond an example: more of them.
TWIN = settings(PROPERTY, max_examples=4 * EXAMPLES)
# Options that keep one answer quick: a short continuation, a short translation.
FAST = {"char-lm": {"length": 2, "temperature": 0}, "seq2seq": {"max_length": 4}}

# Numbers as users type them, and what only looks like them.
TOKENS = ["0", "-0.5", "1e300", "-1e300", "3.5e38", "1e-320", "nan", "-inf", "Infinity", "1,2"]
TOKENS += [",", ",,", "1,", "0x10", "1_000", "\u0663", "\uff11", "1e", ".", "--1", "1\x00"]
NUMBER = st.one_of(
    st.sampled_from(TOKENS),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**400), max_value=10**400).map(str),
)
SPACE = st.sampled_from([" ", "  ", "\t", ",", " , ", "\u00a0", "\u2028", "\x0b"])


@st.composite
def numbers(draw: Callable[..., Any]) -> str:
    """A line of number-like tokens with separators of every kind."""
    tokens = draw(st.lists(NUMBER, max_size=14))
    parts = []
    for token in tokens:
        parts += [token, draw(SPACE)]
    return "".join(parts)


# Finite numbers, a window's worth: they reach the graph, the largest beyond float32's range.
WINDOW = st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=14).map(
    lambda values: " ".join(map(repr, values))
)
INPUTS = st.one_of(st.text(max_size=40), numbers(), WINDOW)
STAMPS = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2020, 1, 3)).map(str)
CSV_CELLS = st.one_of(NUMBER, STAMPS, st.sampled_from(["date", "v", '"', "", " 1 "]))


@st.composite
def csv_texts(draw: Callable[..., Any]) -> str:
    """A CSV text, mostly of rows as wide as its header, often with ordered dates."""
    good, bad = ["date,v", "v", "v,date", "date,v,w"], ["v,v", "1,2", ",v", ""]
    header = draw(st.sampled_from(good * 3 + bad))
    width = len(header.split(","))
    step = draw(st.sampled_from([3600, 900, 0, -60, None]))  # None: dates drawn at random
    lines = [header]
    for k in range(draw(st.integers(0, 7))):
        cells = draw(
            st.lists(
                CSV_CELLS, min_size=width, max_size=width + draw(st.sampled_from([0] * 5 + [1]))
            )
        )
        if "date" in header and step is not None:
            cells[header.split(",").index("date")] = str(
                datetime(2020, 1, 1) + timedelta(seconds=step * k)
            )
        lines.append(",".join(cells))
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n"]))


@pytest.fixture(scope="module")
def models(kinds) -> dict[str, zoo_runtime.Model]:
    return {kind: zoo_runtime.load(onnx_file) for kind, (_, onnx_file) in kinds.items()}


def answers_or_one_line(call: Callable[[], Any]) -> None:
    """`call()` answers, or raises a one-line RuntimeZooError; numpy's warnings are errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            call()
        except zoo_runtime.RuntimeZooError as e:
            assert str(e) and "\n" not in str(e), str(e)


@pytest.mark.parametrize("kind", KINDS)
@PROPERTY
@given(inputs=st.lists(INPUTS, max_size=4))
def test_predict_answers_any_inputs_or_says_why(models, kind, inputs):
    model = models[kind]
    answers_or_one_line(lambda: model.predict(inputs, **FAST.get(kind, {})))


@pytest.mark.parametrize("kind", KINDS)
@PROPERTY
@given(lines=st.lists(INPUTS, max_size=6), end=st.sampled_from(["\n", "\r\n", ""]))
def test_predict_file_answers_any_text_or_says_why(models, kind, lines, end):
    model = models[kind]
    text = end.join(lines) + end
    answers_or_one_line(lambda: model.predict_file(text, "in.txt", **FAST.get(kind, {})))


@pytest.mark.parametrize("kind", KINDS)
@PROPERTY
@given(raw=st.binary(max_size=120))
def test_predict_file_answers_any_bytes_or_says_why(models, kind, raw):
    """Bytes through the runtime's reader (as `--input` reads them), then to the model."""
    model = models[kind]

    def read_and_predict() -> None:
        text = runtime_files.decode(raw, "in.txt")
        model.predict_file(text, "in.txt", **FAST.get(kind, {}))

    answers_or_one_line(read_and_predict)


@PROPERTY
@given(text=st.one_of(csv_texts(), st.text(max_size=60)))
def test_the_csv_forecaster_answers_any_table_or_says_why(models, text):
    answers_or_one_line(lambda: models["forecaster-csv"].predict_file(text, "in.csv"))


# ------------------------------------------------- the runtime's twins of zoo's readers
def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """("answer", value) or ("error", message) for zoo's errors and the runtime's alike."""
    from zoo.core.errors import ZooError

    try:
        return "answer", call()
    except (ZooError, zoo_runtime.RuntimeZooError) as e:
        return "error", str(e)


def same_answer(zoo_call: Callable[[], Any], runtime_call: Callable[[], Any]) -> None:
    """Both give the same value, or both fail with the same message."""
    assert outcome(runtime_call) == outcome(zoo_call)


@TWIN
@given(raw=st.one_of(st.binary(max_size=80), st.text(max_size=40).map(str.encode)))
def test_input_files_decode_as_zoo_decodes_them(raw):
    from zoo_runtime import files

    from zoo.toolkit import textfile

    same_answer(
        lambda: textfile.decode(raw, "in.txt").lines(),
        lambda: files.lines(files.decode(raw, "in.txt")),
    )


@TWIN
@given(text=st.one_of(numbers(), WINDOW, st.text(max_size=30)))
def test_numbers_parse_as_zoo_parses_them(text):
    from zoo_runtime.model import parse_numbers as runtime_parse_numbers

    from zoo.toolkit.data import parse_numbers

    same_answer(
        lambda: parse_numbers(text, where="input 3"),
        lambda: runtime_parse_numbers(text, where="input 3"),
    )


@TWIN
@given(text=csv_texts())
def test_csv_files_read_as_zoo_reads_them(text):
    """Parsing, each column as numbers and as dates, the timestamps after the last row."""
    from zoo_runtime import series as runtime_series

    from zoo.toolkit import series, textfile

    want = outcome(lambda: series.read_table(textfile.TextFile("in.csv", text, "")))
    got = outcome(lambda: runtime_series.read_table(text, "in.csv"))
    assert got[0] == want[0] and (got[0] == "answer" or got == want)
    if want[0] == "error":
        return
    zoo_table, table = want[1], got[1]
    assert (table.header, table.rows, table.lines) == (
        zoo_table.header,
        zoo_table.rows,
        zoo_table.lines,
    )
    for column in ("v", "date"):
        same_answer(
            lambda t=zoo_table, c=column: t.numbers(c, option="columns"),
            lambda t=table, c=column: t.numbers(c, option="columns"),
        )
        same_answer(
            lambda t=zoo_table, c=column: series.next_timestamps(t, c, 2),
            lambda t=table, c=column: runtime_series.next_timestamps(t, c, 2),
        )
