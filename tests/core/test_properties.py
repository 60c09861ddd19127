"""Property-based tests (Hypothesis) over what users type: `--set` values for every config of
every installed architecture and dataset, run files, and raw predict inputs to every built-in
model. Each input either works or gives zoo's own error with a short message; never another
exception. The example counts are in docs/reliability.md; derandomized, so CI is repeatable."""

from __future__ import annotations

import math
from pathlib import Path

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zoo
from zoo.core import config as cfg
from zoo.core.errors import UsageError, ZooError
from zoo.core.registry import get_registry
from zoo.core.settings import TrainConfig
from zoo.features import runconfig

EXAMPLES = 300
MAX_MESSAGE = 1_200  # characters: an error line quotes what the user gave, cut short


def examples(n: int) -> settings:
    return settings(
        max_examples=n,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


def _config_classes() -> list[type]:
    reg = get_registry()
    classes: list[type] = [TrainConfig]
    for name in reg.list_architectures():
        spec = reg.architecture(name).spec
        classes += [spec.config] + ([spec.predict_config] if spec.predict_config else [])
    classes += [reg.dataset(name).spec.config for name in reg.list_datasets()]
    return list(dict.fromkeys(classes))


CONFIGS = _config_classes()

values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["0", "-1", "1e309", "nan", "inf", "-inf", "1_000", "0x10", "true", " 3 "]),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(min_size=2_000, max_size=5_000, alphabet="ab,=( )1"),
)


@examples(EXAMPLES)
@given(data=st.data(), config_cls=st.sampled_from(CONFIGS))
def test_set_values_build_a_config_or_name_the_setting(data, config_cls):
    names = [f.name for f in cfg.fields(config_cls)]
    key = data.draw(st.one_of(st.sampled_from(names), st.text(min_size=1, max_size=30)))
    value = data.draw(values)
    try:
        built = cfg.build(config_cls, {key: value})
    except UsageError as e:
        message = str(e)
        assert len(message) < MAX_MESSAGE, message[:200]
        assert repr(key)[:20] in message or key[:20] in message or repr(value)[:20] in message
        return
    assert isinstance(built, config_cls)
    if key in names:  # what was accepted is the setting's type, finite where numeric
        got = getattr(built, key)
        assert not (isinstance(got, float) and math.isnan(got))


@examples(EXAMPLES)
@given(items=st.lists(st.text(max_size=30), max_size=5))
def test_set_assignments_parse_or_say_key_value(items):
    try:
        parsed = cfg.parse_assignments(items)
    except UsageError as e:
        assert "expected KEY=VALUE" in str(e)
        return
    assert set(parsed) <= {item.partition("=")[0].strip() for item in items}


toml_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.text(max_size=20),
)
toml_values = st.recursive(toml_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
run_keys = st.sampled_from(
    ["epochs", "lr", "seed", "out", "data", "dataset", "steps", "batch_size", "threads", "x"]
)
setting_keys = st.sampled_from(
    ["hidden_size", "lr", "model.hidden_size", "train.epochs", "dropout", "nope"]
)


def _run_file(options: dict, table: dict) -> str:
    lines = [f"{key} = {runconfig.toml_value(v)}" for key, v in options.items()]
    lines.append("[settings]")
    lines += [f'"{key}" = {runconfig.toml_value(v)}' for key, v in table.items()]
    return "\n".join(lines) + "\n"


@examples(150)
@given(
    options=st.dictionaries(run_keys, toml_values, max_size=4),
    table=st.dictionaries(setting_keys, toml_values, max_size=4),
    raw=st.one_of(st.none(), st.binary(max_size=200)),
)
def test_run_files_load_or_give_one_usage_error(tmp_path_factory, options, table, raw):
    from zoo.cli.train import run_command

    path = tmp_path_factory.mktemp("runfile") / "run.toml"
    if raw is None:
        path.write_text(_run_file(options, table), encoding="utf-8")
    else:
        path.write_bytes(raw)
    ctx = click.Context(run_command)
    param = next(p for p in run_command.params if p.name == "config_file")
    try:
        runconfig.load(ctx, param, str(path))
        runconfig.check_settings(ctx, "gru-regressor", None)
    except UsageError as e:
        assert str(path) in str(e) and len(str(e)) < MAX_MESSAGE + len(str(path))


@pytest.fixture(scope="module")
def built_ins():
    return {
        "char-lm": zoo.create("elman-rnn", "text"),
        "step-regression": zoo.create("elman-rnn", "sine-cosine", num_sequences=20),
        "step-classification": zoo.create("elman-rnn", "char-pairs"),
        "tagger": zoo.create("lstm-tagger", "toy-tags"),
        "forecaster": zoo.create("gru-regressor", "sine-windows", num_windows=40),
        "seq2seq": zoo.create("rnn-seq2seq", "word-pairs"),
    }


inputs = st.lists(
    st.one_of(
        st.text(max_size=30),
        st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=12).map(
            lambda xs: " ".join(map(repr, xs))
        ),
        st.text(alphabet="0123456789.,-e \t", max_size=40),
    ),
    min_size=1,
    max_size=4,
)


@examples(60)
@given(
    key=st.sampled_from(
        ["char-lm", "step-regression", "step-classification", "tagger", "forecaster", "seq2seq"]
    ),
    given_inputs=inputs,
)
def test_predict_answers_or_says_what_is_wrong(built_ins, key, given_inputs):
    model = built_ins[key]
    try:
        answers = model.predict(given_inputs, **({"length": 5} if key == "char-lm" else {}))
    except ZooError as e:
        assert len(str(e)) < MAX_MESSAGE, str(e)[:200]
        return
    assert all({"input", "output", "text"} <= set(a) for a in answers)


NUMBER_TOKENS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**40), 10**40).map(str),
    st.sampled_from(["1e39", "-3.5e38", "3.4e38", "1_0", "0x10", "nan", "inf", "", "-"]),
    st.text(alphabet="0123456789.eE+-x_ ", max_size=8),
)


@examples(EXAMPLES)
@given(tokens=st.lists(NUMBER_TOKENS, max_size=12))
def test_plain_numbers_read_as_the_token_by_token_parser_reads_them(tokens):
    """A text of single numbers takes parse_numbers' fast path; a comma after every token
    (one feature each, as a user may type them) takes the token-by-token one. Both read the
    same numbers, or both refuse."""
    from zoo.toolkit.data import parse_numbers

    text = " ".join(tokens)

    def read(t: str) -> list[list[float]] | str:
        try:
            return parse_numbers(t)
        except UsageError:
            return "refused"

    assert repr(read(text)) == repr(read(" ".join(t + "," for t in text.split())))


def test_the_properties_ran_their_examples():
    """docs/reliability.md quotes these counts: keep them in step."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "reliability.md").read_text()
    assert f"{EXAMPLES} examples" in doc
