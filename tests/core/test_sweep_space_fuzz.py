"""Search spaces under Hypothesis: whatever a `--set` value of `zoo sweep` says, it becomes a
Dimension Optuna accepts, or a `UsageError` naming the setting; never another exception.

Random text, and values that look like searches but are odd: bounds reversed, negative,
nan, inf, huge, unicode, missing or extra parentheses, extra commas. Deterministic
(`derandomize=True`) and quick: the parser alone, and then through the checks of a real
architecture's settings, as `zoo sweep` runs them before any trial.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from zoo.core.errors import UsageError
from zoo.features.sweep_space import DISTRIBUTIONS, Dimension, check, parse, split

optuna = pytest.importorskip("optuna", reason="zoo sweep needs the sweep extra (optuna)")

EXAMPLES = 200
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

NUMBERS = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "-0", "0.0", "1_000", "٣", "0x10", "1e-320"]),
    st.sampled_from(["9" * 5000, "", " ", "a", "'x'", '"', "true", "None", "(", ")", "é"]),
    st.text(max_size=6),
)
NAMES = st.one_of(
    st.sampled_from(DISTRIBUTIONS),
    st.sampled_from(["INT", "Uniform", "normal", "İnt", "choice ", "log_uniform", "", "("]),
    st.text(max_size=8),
)


@st.composite
def well_formed_specs(draw: Any) -> str:
    """`NAME(A,B[,STEP])` or `choice(...)` as a user would write them, with bounds of any
    sign, size and order."""
    name = draw(st.sampled_from(DISTRIBUTIONS))
    if name == "choice":
        words = st.sampled_from(["gru", "lstm", "'a b'", "true", "nan", "inf", "8", "0.5", "x"])
        args = draw(st.lists(st.one_of(words, st.integers(-99, 999).map(str)), max_size=4))
        return f"choice({','.join(args)})"
    if name in ("int", "logint"):
        numbers = st.one_of(st.integers(-5, 600), st.integers(-(10**20), 10**20))
    else:
        numbers = st.one_of(st.floats(-10, 10), st.sampled_from([1e-4, 1e-2, 0.5, 1e300]))
    low, high, step = draw(numbers), draw(numbers), draw(st.integers(-2, 50))
    if draw(st.integers(0, 3)):  # mostly in order; else reversed or equal, as typed
        low, high = sorted((low, high))
    args = [low, high, step] if name == "int" and draw(st.booleans()) else [low, high]
    return f"{name}({','.join(map(repr, args))})"


@st.composite
def odd_specs(draw: Any) -> str:
    """`NAME(ARG,ARG...)` with odd names, arguments, separators and parentheses."""
    args = draw(st.lists(NUMBERS, max_size=5))
    separator = draw(st.sampled_from([",", ", ", ",,", " , ", ";", ""]))
    opening, closing = draw(st.sampled_from([("(", ")"), ("(", ""), ("", ")"), ("((", "))"),
                                             ("(", "))"), ("[", "]"), (" ( ", " ) ")]))  # fmt: skip
    trailing = draw(st.sampled_from(["", ",", " ", "x", ")"]))
    return f"{draw(NAMES)}{opening}{separator.join(args)}{trailing}{closing}"


class Distributions:
    """A stand-in for an Optuna trial: each `suggest_*` builds Optuna's distribution, which
    checks the bounds, step and choices exactly as a real trial would."""

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> Any:
        return optuna.distributions.FloatDistribution(low, high, log=log)

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> Any:
        return optuna.distributions.IntDistribution(low, high, log=log, step=step)

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        return optuna.distributions.CategoricalDistribution(choices)


def assert_valid(dim: Dimension, key: str) -> None:
    """What a searched setting must be: Optuna takes it, its numbers are finite, its
    bounds in order, and a choice is of distinct plain values."""
    assert dim.key == key and dim.kind in DISTRIBUTIONS
    with warnings.catch_warnings():  # Optuna changing a bound (a STEP that misses HIGH)
        warnings.simplefilter("error")
        distribution = dim.suggest(Distributions())
    if dim.kind == "choice":
        assert dim.args and len(set(map(repr, dim.args))) == len(dim.args)
        assert all(type(a) in (str, int, float, bool) for a in dim.args)
        assert all(math.isfinite(a) for a in dim.args if isinstance(a, float))
        assert list(distribution.choices) == list(dim.args)
        return
    integer = dim.kind in ("int", "logint")
    assert all(type(a) is (int if integer else float) for a in dim.args)
    assert all(math.isfinite(a) for a in dim.args) and dim.args[0] < dim.args[1]
    assert distribution.low == dim.args[0]


def parses_or_names_the_setting(key: str, text: str) -> None:
    try:
        dim = parse(key, text)
    except UsageError as e:
        assert str(e).startswith(f"--set {key}"), str(e)
        assert "\n" not in str(e)
        event("refused")
        return
    assert_valid(dim, key)
    event(f"parsed: {dim.kind}")


@FUZZ
@given(st.text(max_size=40))
def test_random_text_parses_or_is_a_usage_error_naming_the_setting(text):
    parses_or_names_the_setting("lr", text)


@FUZZ
@given(well_formed_specs())
def test_well_formed_search_spaces_parse_or_say_which_bound_is_wrong(text):
    parses_or_names_the_setting("hidden_size", text)


@FUZZ
@given(odd_specs())
def test_odd_search_spaces_parse_or_are_a_usage_error_naming_the_setting(text):
    parses_or_names_the_setting("hidden_size", text)


@FUZZ
@given(st.dictionaries(st.sampled_from(["lr", "dropout", "x"]), st.one_of(well_formed_specs(),
       odd_specs(), st.text(max_size=12)), max_size=3))  # fmt: skip
def test_split_keeps_fixed_values_and_checks_every_search(values):
    """`--set` values become fixed settings or checked searches; a value that starts like a
    search (`loguniform(1e-3`) is never taken for a fixed one."""
    try:
        fixed, space = split(values)
    except UsageError as e:
        assert any(str(e).startswith(f"--set {key}") for key in values), str(e)
        return
    assert set(fixed) | set(space) == set(values) and not set(fixed) & set(space)
    for key, dim in space.items():
        assert_valid(dim, key)
    for value in fixed.values():
        assert not value.lstrip().lower().startswith(tuple(f"{d}(" for d in DISTRIBUTIONS))


@pytest.fixture(scope="module")
def convert() -> Any:
    from zoo.features.runconfig import setting_converter

    return setting_converter("gru-regressor", "sine-windows")


KEYS = ["lr", "hidden_size", "dropout", "decoder", "linear_skip", "epochs", "num_windows"]


@settings(FUZZ, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(KEYS), text=st.one_of(well_formed_specs(), odd_specs()))
def test_searches_of_real_settings_are_checked_or_refused_naming_the_setting(convert, key, text):
    """Through the same checks `zoo sweep` runs before any trial: each bound and choice
    converted as `--set` would convert it, with the setting's own limits."""
    try:
        space = split({key: text})[1]
        check(space, convert)
    except UsageError as e:
        assert str(e).startswith(f"--set {key}"), str(e)
        return
    for dim in space.values():
        assert_valid(dim, key)
        event(f"checked: {dim.kind}")
