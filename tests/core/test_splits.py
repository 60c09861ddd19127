"""zoo.splits: the held-out settings every dataset shares and the one rule that applies them
(training: fractions or --dev/--test files; evaluating the training file: the same split;
any other file: all of it is the test)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.conftest import FUZZ
from zoo import Fractions, HeldOut, param
from zoo.core import config as cfg
from zoo.core.errors import SettingError, UsageError
from zoo.toolkit.splits import split, split_by_fraction

FRACTION = st.floats(0.0, 0.9, allow_nan=False)
# Each part is cut by rounding, the last takes the rest: within one example of its share.
WITHIN_ONE = 1 + 1e-9


@st.composite
def shares(draw: st.DrawFn, *, over_one: bool = False) -> tuple[float, float]:
    """(valid_fraction, test_fraction), each within its limits, adding up to at most 1 (or,
    with `over_one`, to more)."""
    if over_one:
        valid = draw(st.floats(0.11, 0.9))
        return valid, draw(st.floats(1.0001 - valid, 0.9))
    valid = draw(FRACTION)
    return valid, draw(st.floats(0.0, min(0.9, 1 - valid)))


@dataclass
class FileData(HeldOut):
    """A dataset that reads files and changes one default, as plugins do."""

    test_fraction: float = param(0.0, "share held out for the test (none by default)", min=0.0)


def held_out(valid: float = 0.1, test: float = 0.1, seed: int = 0, **paths: Any) -> HeldOut:
    return HeldOut(valid_fraction=valid, test_fraction=test, split_seed=seed, **paths)


def parts_of(result: dict[str, Sequence[Any]]) -> dict[str, list[Any]]:
    assert set(result) == {"train", "valid", "test"}
    return {name: list(part) for name, part in result.items()}


def assert_partition(parts: dict[str, list[int]], n: int) -> None:
    """Every example in exactly one part."""
    together = parts["train"] + parts["valid"] + parts["test"]
    assert sorted(together) == list(range(n))


# ------------------------------------------------------------------------------ training
@FUZZ
@given(n=st.integers(0, 300), fractions=shares(), seed=st.integers(0, 2**31))
def test_training_cuts_disjoint_parts_of_the_fractions_sizes(
    n: int, fractions: tuple[float, float], seed: int
) -> None:
    valid, test = fractions
    examples = list(range(n))
    parts = parts_of(split(examples, held_out(valid, test, seed), state=None))
    assert_partition(parts, n)
    assert abs(len(parts["valid"]) - valid * n) <= WITHIN_ONE
    assert abs(len(parts["test"]) - test * n) <= WITHIN_ONE
    assert abs(len(parts["train"]) - (1 - valid - test) * n) <= WITHIN_ONE
    again = parts_of(split(examples, held_out(valid, test, seed), state=None))
    assert again == parts


def test_the_cut_is_a_shuffle_by_split_seed() -> None:
    examples = list(range(200))
    first = parts_of(split(examples, held_out(seed=0), state=None))
    assert parts_of(split(examples, held_out(seed=0), state=None)) == first
    other = parts_of(split(examples, held_out(seed=1), state=None))
    assert other != first
    assert {len(p) for p in other.values()} == {len(p) for p in first.values()}
    # shuffled, not the end of the list
    assert first["test"] != examples[-len(first["test"]) :]
    assert first["valid"] != examples[-len(first["valid"]) :]


def test_nothing_held_out_trains_on_everything() -> None:
    parts = parts_of(split(list("abcde"), held_out(0.0, 0.0), state=None))
    assert sorted(parts["train"]) == list("abcde")
    assert parts["valid"] == parts["test"] == []


def test_split_by_fraction_drops_nothing() -> None:
    examples = list(range(7))
    parts = split_by_fraction(examples, [0.5, 0.25, 0.25], seed=3)
    assert len(parts) == 3
    assert sorted(parts[0] + parts[1] + parts[2]) == examples
    assert (len(parts[0]), len(parts[1])) == (round(0.5 * 7), round(0.25 * 7))
    assert split_by_fraction(examples, [0.5, 0.25, 0.25], seed=3) == parts
    with pytest.raises(UsageError):
        split_by_fraction(examples, [-0.2, 0.6, 0.6], seed=0)


@FUZZ
@given(fractions=shares(over_one=True))
def test_fractions_over_one_are_a_usage_error(fractions: tuple[float, float]) -> None:
    valid, test = fractions
    with pytest.raises(UsageError, match="valid_fraction"):
        split(list(range(10)), held_out(valid, test), state=None)


# --------------------------------------------------------------------- --dev and --test
class Reader:
    """A `read` callback that remembers what it was asked for."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, path: str) -> list[str]:
        self.paths.append(path)
        return [f"{path}#{i}" for i in range(3)]


def test_a_dev_file_replaces_the_valid_fraction() -> None:
    read = Reader()
    config = held_out(0.5, 0.2, dev_path="dev.txt")
    parts = parts_of(split(list(range(50)), config, state=None, read=read))
    assert read.paths == ["dev.txt"]
    assert parts["valid"] == ["dev.txt#0", "dev.txt#1", "dev.txt#2"]
    assert_partition({**parts, "valid": []}, 50)  # none of the examples went to valid
    assert len(parts["test"]) == 10


def test_a_test_file_replaces_the_test_fraction() -> None:
    read = Reader()
    parts = parts_of(
        split(list(range(50)), held_out(0.2, 0.5, test_path="t.txt"), state=None, read=read)
    )
    assert read.paths == ["t.txt"]
    assert parts["test"] == ["t.txt#0", "t.txt#1", "t.txt#2"]
    assert_partition({**parts, "test": []}, 50)
    assert len(parts["valid"]) == 10


def test_with_both_files_every_example_trains() -> None:
    read = Reader()
    config = held_out(0.3, 0.3, dev_path="d", test_path="t")
    parts = parts_of(split(list(range(20)), config, state=None, read=read))
    assert sorted(read.paths) == ["d", "t"]
    assert sorted(parts["train"]) == list(range(20))


def test_a_file_frees_its_fraction_from_the_sum() -> None:
    """0.8 + 0.5 would be over 1, but the dev file takes the valid fraction's place."""
    parts = parts_of(
        split(list(range(10)), held_out(0.8, 0.5, dev_path="d"), state=None, read=Reader())
    )
    assert len(parts["test"]) == 5


def test_a_file_without_a_reader_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--dev"):
        split(list(range(10)), held_out(dev_path="d"), state=None)
    with pytest.raises(UsageError, match="--test"):
        split(list(range(10)), held_out(test_path="t"), state=None)


# ---------------------------------------------------------------------------- contiguous
@FUZZ
@given(n=st.integers(0, 300), fractions=shares())
@example(n=3, fractions=(0.5, 0.5))  # both shares round up: one example too many
def test_contiguous_lays_out_train_then_test_then_valid(
    n: int, fractions: tuple[float, float]
) -> None:
    valid, test = fractions
    examples = list(range(n))
    parts = parts_of(split(examples, held_out(valid, test, seed=7), state=None, contiguous=True))
    assert parts["train"] + parts["test"] + parts["valid"] == examples
    assert abs(len(parts["valid"]) - valid * n) <= WITHIN_ONE
    assert abs(len(parts["test"]) - test * n) <= WITHIN_ONE


# ---------------------------------------------------------------------------- evaluating
@FUZZ
@given(
    n=st.integers(0, 120),
    fractions=shares(),
    seed=st.integers(0, 1000),
    contiguous=st.booleans(),
    saved=st.sampled_from(["fingerprint", "none"]),
)
def test_evaluating_the_training_file_gives_the_same_split(
    n: int, fractions: tuple[float, float], seed: int, contiguous: bool, saved: str
) -> None:
    """Same fingerprint, or a state saved without one (built-in data, an older file): the
    same parts as in training, and the whole file as the test when training held none out."""
    valid, test = fractions
    examples, config = list(range(n)), held_out(valid, test, seed)
    trained = parts_of(split(examples, config, state=None, fingerprint="f1", contiguous=contiguous))
    state = {"fingerprint": "f1", "vocab": []} if saved == "fingerprint" else {"vocab": []}
    again = parts_of(split(examples, config, state=state, fingerprint="f1", contiguous=contiguous))
    if trained["test"]:
        assert again == trained
    else:
        assert again == {**trained, "test": examples}


def test_a_state_without_fingerprint_and_built_in_data_give_the_same_split() -> None:
    examples, config = list(range(40)), held_out(0.25, 0.25, seed=5)
    trained = parts_of(split(examples, config, state=None))
    assert parts_of(split(examples, config, state={})) == trained
    assert parts_of(split(examples, config, state={}, fingerprint="new")) == trained


def test_nothing_held_out_evaluates_the_whole_file() -> None:
    examples, config = list(range(30)), held_out(0.1, 0.0, seed=2)
    trained = parts_of(split(examples, config, state=None, fingerprint="f"))
    assert trained["test"] == []
    again = parts_of(split(examples, config, state={"fingerprint": "f"}, fingerprint="f"))
    assert again["test"] == examples
    assert again["valid"] == trained["valid"] and again["train"] == trained["train"]


@pytest.mark.parametrize("contiguous", [False, True])
def test_another_file_is_all_test(contiguous: bool) -> None:
    examples = list(range(30))
    parts = parts_of(
        split(
            examples,
            held_out(0.3, 0.3, dev_path="d"),
            state={"fingerprint": "trained-on"},
            fingerprint="other",
            read=Reader(),
            contiguous=contiguous,
        )
    )
    assert parts == {"train": [], "valid": [], "test": examples}


def test_evaluating_reads_the_dev_and_test_files_again() -> None:
    read = Reader()
    config = held_out(0.2, 0.2, dev_path="d", test_path="t")
    state = {"fingerprint": "f"}
    parts = parts_of(split(list(range(10)), config, state=state, fingerprint="f", read=read))
    assert sorted(read.paths) == ["d", "t"]
    assert parts["valid"] == ["d#0", "d#1", "d#2"] and parts["test"] == ["t#0", "t#1", "t#2"]


# ------------------------------------------------------------------------ the dataclasses
def defaults(config_cls: type) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(config_cls)}


def test_fractions_and_held_out_fields() -> None:
    assert defaults(Fractions) == {"valid_fraction": 0.1, "test_fraction": 0.1, "split_seed": 0}
    assert defaults(HeldOut) == {
        "valid_fraction": 0.1,
        "test_fraction": 0.1,
        "split_seed": 0,
        "path": None,
        "dev_path": None,
        "test_path": None,
    }
    assert issubclass(HeldOut, Fractions)
    for info in cfg.fields(HeldOut):
        assert info.help, info.name  # `zoo info` has something to say about each


def test_the_fractions_limits_are_checked_as_settings() -> None:
    with pytest.raises(SettingError, match="valid_fraction"):
        cfg.build(Fractions, {"valid_fraction": "0.95"})
    with pytest.raises(SettingError, match="test_fraction"):
        cfg.build(Fractions, {"test_fraction": "-0.1"})
    built = cfg.build(HeldOut, {"split_seed": "4", "dev_path": "dev.tsv"})
    assert (built.split_seed, built.dev_path, built.valid_fraction) == (4, "dev.tsv", 0.1)


def test_a_subclass_redeclares_a_default_and_keeps_the_rest() -> None:
    assert [f.name for f in dataclasses.fields(FileData)] == [
        f.name for f in dataclasses.fields(HeldOut)
    ]
    assert defaults(FileData) == {**defaults(HeldOut), "test_fraction": 0.0}
    info = {f.name: f for f in cfg.fields(FileData)}["test_fraction"]
    assert info.help == "share held out for the test (none by default)"
    config = cfg.build(FileData, {"path": "x.tsv"})
    parts = parts_of(split(list(range(20)), config, state=None))
    assert parts["test"] == [] and len(parts["valid"]) == 2
