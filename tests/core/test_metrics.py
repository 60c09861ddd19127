"""zoo.metrics.Confusion against a brute-force count over (gold, predicted) pairs: accuracy,
per-class precision/recall/F1, macro F1 over the classes present, and the matrix."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import FUZZ
from zoo.toolkit.metrics import IGNORE, Confusion


def brute_force(labels: list[str], predicted: list[int], gold: list[int]) -> dict[str, Any]:
    """The metrics from their definitions, one item at a time. Padding (-100) is no item; a
    gold label outside the set is an item nobody gets right, outside the matrix."""
    size = len(labels)
    items = [(g, p) for g, p in zip(gold, predicted) if g != IGNORE]
    matrix = [[0] * size for _ in range(size)]
    for g, p in items:
        if 0 <= g < size:
            matrix[g][p] += 1
    if not items:  # nothing to score
        return {"confusion": {"labels": labels, "counts": matrix}}
    out: dict[str, Any] = {
        "accuracy": sum(g == p for g, p in items) / len(items),
        "confusion": {"labels": labels, "counts": matrix},
    }
    f1s = []
    for i, name in enumerate(labels):
        as_gold = sum(g == i for g, _ in items)
        as_predicted = sum(p == i for _, p in items)
        hits = sum(g == p == i for g, p in items)
        if not (as_gold or as_predicted):
            continue
        precision = hits / as_predicted if as_predicted else 0.0
        recall = hits / as_gold if as_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out |= {f"precision/{name}": precision, f"recall/{name}": recall, f"f1/{name}": f1}
        f1s.append(f1)
    out["macro_f1"] = sum(f1s) / len(f1s) if f1s else 0.0
    return out


def assert_same(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    assert set(actual) == set(expected)
    for key, value in expected.items():
        if key == "confusion":
            assert actual[key] == value
        else:
            assert math.isclose(actual[key], value, rel_tol=1e-12, abs_tol=1e-12), key
            assert isinstance(actual[key], float), key


@st.composite
def labelled(draw: st.DrawFn, *, outside: bool) -> tuple[list[str], list[int], list[int]]:
    """(labels, predicted, gold): gold is a label index, -100 padding or, with `outside`,
    an index past the label set (a tag unseen in training)."""
    size = draw(st.integers(1, 6))
    labels = [f"L{i}" for i in range(size)]
    n = draw(st.integers(0, 60))
    top = size + 2 if outside else size
    predicted = draw(st.lists(st.integers(0, size - 1), min_size=n, max_size=n))
    gold = draw(
        st.lists(st.one_of(st.integers(0, top - 1), st.just(IGNORE)), min_size=n, max_size=n)
    )
    return labels, predicted, gold


def confusion_of(labels: list[str], predicted: list[int], gold: list[int]) -> Confusion:
    confusion = Confusion(labels)
    confusion.add(torch.tensor(predicted, dtype=torch.long), torch.tensor(gold, dtype=torch.long))
    return confusion


@FUZZ
@given(case=labelled(outside=False))
def test_metrics_match_a_brute_force_count(case: tuple[list[str], list[int], list[int]]) -> None:
    labels, predicted, gold = case
    assert_same(confusion_of(labels, predicted, gold).metrics(), brute_force(*case))


@FUZZ
@given(case=labelled(outside=True))
def test_gold_outside_the_label_set_counts_as_wrong(
    case: tuple[list[str], list[int], list[int]],
) -> None:
    """Accuracy and the matrix as the brute force counts them, and a prediction of class i
    for an item whose gold tag is unknown is a wrong prediction of i (its precision)."""
    labels, predicted, gold = case
    confusion = confusion_of(labels, predicted, gold)
    assert confusion.total == sum(g != IGNORE for g in gold)
    assert_same(confusion.metrics(), brute_force(*case))


def test_outside_gold_in_a_small_case() -> None:
    confusion = confusion_of(["a", "b"], [0, 0, 1, 1], [0, 5, 1, IGNORE])
    metrics = confusion.metrics()
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["confusion"]["counts"] == [[1, 0], [0, 1]]
    assert metrics["recall/a"] == metrics["recall/b"] == 1.0


def test_a_prediction_for_unknown_gold_is_a_false_positive() -> None:
    """ "a" is predicted twice, once for an "a" and once for a tag unseen in training (5):
    right once in two, as accuracy already counts it."""
    metrics = confusion_of(["a", "b"], [0, 0, 1], [0, 5, 1]).metrics()
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["precision/a"] == pytest.approx(1 / 2)
    assert metrics["f1/a"] == pytest.approx(2 / 3)


def test_padding_is_ignored_in_a_two_dimensional_batch() -> None:
    gold = torch.tensor([[0, 1, IGNORE], [1, IGNORE, IGNORE]])
    predicted = torch.tensor([[0, 0, 1], [1, 1, 0]])  # the padded positions would be wrong
    confusion = Confusion(["x", "y"])
    confusion.add(predicted, gold)
    metrics = confusion.metrics()
    assert confusion.total == 3 and confusion.correct == 2
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["confusion"] == {"labels": ["x", "y"], "counts": [[1, 0], [1, 1]]}


@FUZZ
@given(case=labelled(outside=True), cuts=st.lists(st.integers(0, 60), max_size=4))
def test_batches_add_up_to_one_batch(
    case: tuple[list[str], list[int], list[int]], cuts: list[int]
) -> None:
    labels, predicted, gold = case
    bounds = sorted({0, len(gold), *(c for c in cuts if c <= len(gold))})
    in_batches = Confusion(labels)
    for start, end in itertools.pairwise(bounds):
        in_batches.add(torch.tensor(predicted[start:end]), torch.tensor(gold[start:end]))
    at_once = confusion_of(labels, predicted, gold)
    assert in_batches.metrics() == at_once.metrics()
    assert torch.equal(in_batches.counts, at_once.counts)


def test_classes_never_seen_are_left_out_of_the_macro_average() -> None:
    confusion = confusion_of(["a", "b", "c"], [0, 0, 1], [0, 1, 1])
    metrics = confusion.metrics()
    assert "f1/c" not in metrics and "precision/c" not in metrics
    assert metrics["macro_f1"] == pytest.approx((metrics["f1/a"] + metrics["f1/b"]) / 2)


def test_per_class_false_keeps_the_summary_only() -> None:
    metrics = confusion_of(["a", "b"], [0, 1, 1], [0, 1, 0]).metrics(per_class=False)
    assert set(metrics) == {"accuracy", "macro_f1", "confusion"}
    assert metrics["macro_f1"] == pytest.approx(
        brute_force(["a", "b"], [0, 1, 1], [0, 1, 0])["macro_f1"]
    )


def test_nothing_counted_scores_nothing() -> None:
    """Unlabelled data (every gold -100): no accuracy or F1 that would read as a useless
    model, only the (empty) matrix."""
    confusion = Confusion(["normal", "anomaly"])
    confusion.add(torch.tensor([0, 1, 1]), torch.tensor([-100, -100, -100]))
    assert confusion.metrics() == {
        "confusion": {"labels": ["normal", "anomaly"], "counts": [[0, 0], [0, 0]]}
    }


def test_int32_predictions_are_counted() -> None:
    confusion = Confusion(["a", "b"])
    confusion.add(torch.tensor([1, 0], dtype=torch.int32), torch.tensor([1, 1], dtype=torch.long))
    assert confusion.metrics()["confusion"]["counts"] == [[0, 0], [1, 1]]
