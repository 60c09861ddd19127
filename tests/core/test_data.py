"""zoo.data helpers that every loader leans on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.core.errors import UsageError
from zoo.toolkit.data import map_in_length_order, move, pad
from zoo.toolkit.splits import split_by_fraction


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.integers(-(2**40), 2**40), max_size=12), max_size=9),
    st.integers(-100, 5),
)
def test_pad_matches_row_by_row_padding(sequences, value):
    longest = max((len(s) for s in sequences), default=0)
    expected = torch.full((len(sequences), longest), value, dtype=torch.long)
    for i, s in enumerate(sequences):
        expected[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    assert torch.equal(pad(sequences, value), expected)
    arrays = [np.array(s, dtype=np.int64) for s in sequences]
    assert torch.equal(pad(arrays, value), expected)


def test_pad_keeps_the_dtype():
    out = pad([[0.5, 1.5], [2.5]], value=0, dtype=torch.float32)
    assert out.dtype == torch.float32
    assert out.tolist() == [[0.5, 1.5], [2.5, 0.0]]
    assert pad([]).shape == (0, 0) and pad([[], []]).shape == (2, 0)


def test_split_by_fraction_is_a_seeded_partition():
    parts = split_by_fraction(list(range(100)), [0.7, 0.2, 0.1], seed=3)
    assert [len(p) for p in parts] == [70, 20, 10]
    assert sorted(x for p in parts for x in p) == list(range(100))
    assert parts == split_by_fraction(list(range(100)), [0.7, 0.2, 0.1], seed=3)
    assert parts != split_by_fraction(list(range(100)), [0.7, 0.2, 0.1], seed=4)
    with pytest.raises(UsageError, match="add up to 1.2"):
        split_by_fraction(list(range(10)), [-0.2, 0.6, 0.6], seed=0)


def test_pad_rows_of_vectors_gives_batch_time_features():
    out = pad([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0]]], value=-1, dtype=torch.float32)
    assert out.shape == (2, 2, 2)
    assert out.tolist() == [[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [-1.0, -1.0]]]


def test_map_in_length_order_batches_by_length_and_restores_the_order():
    items = ["ccc", "a", "bb", "dddd", "e"]
    seen = []

    def run(batch):
        seen.append(batch)
        return [s.upper() for s in batch]

    assert map_in_length_order(run, items, batch_size=2) == [s.upper() for s in items]
    assert seen == [["a", "e"], ["bb", "ccc"], ["dddd"]]


def test_move_walks_dicts_lists_and_tuples():
    batch = {"x": torch.zeros(1), "rows": [torch.ones(1), (torch.ones(2), "label")], "n": 3}
    moved = move(batch, "meta")
    assert moved["x"].device.type == "meta" and moved["n"] == 3
    assert moved["rows"][0].device.type == "meta" and moved["rows"][1][0].device.type == "meta"
    assert isinstance(moved["rows"][1], tuple) and moved["rows"][1][1] == "label"
