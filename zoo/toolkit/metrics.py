"""Classification metrics, for any task whose answer is one label from a fixed set per item
(a tag per word, a class per sequence, a symbol per step).

A `Confusion` counts (gold, predicted) pairs batch by batch and gives accuracy, per-class
precision, recall and F1, their macro average, and the confusion matrix itself:

    confusion = Confusion(tag_names)
    for batch in batches:
        confusion.add(scores.argmax(-1), batch["tags"])   # -100 marks padding
    metrics = {"loss": ..., **confusion.metrics()}

Every counted item is scored once, so the figures are exact sums over a split: the same
whether it is scored in one batch or many.

A `Tally` holds what a network's metrics are computed from (sums, counts and `Confusion`
tables) so that the shares of a split scored by several processes add up to the statistics of
the whole split: `network.tally(batches)` fills one, zoo merges every process's, and
`network.score(tally)` turns the merged one into metrics (docs/distributed.md, "Sharded
validation"). Ratios of ratios would not add up; sums do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

IGNORE = -100  # the padding label of torch's cross_entropy


class Confusion:
    """Counts of (gold, predicted) label pairs. A gold label outside the label set (a tag the
    model never saw in training) counts as an item it cannot get right."""

    def __init__(self, labels: Sequence[str]):
        self.labels = list(labels)
        size = len(self.labels)
        self.counts = torch.zeros(size, size, dtype=torch.long)  # [gold, predicted]
        self.unlabelled = 0  # items whose gold label is outside the set
        # what was predicted for those items: wrong, so it counts against each class's precision
        self.predicted_unlabelled = torch.zeros(size, dtype=torch.long)

    def add(self, predicted: torch.Tensor, gold: torch.Tensor) -> None:
        """Count the items of a batch; positions where `gold` is -100 are padding."""
        keep = gold != IGNORE
        gold, predicted = gold[keep].cpu(), predicted[keep].cpu()
        size = len(self.labels)
        known = (gold >= 0) & (gold < size)
        self.unlabelled += int((~known).sum())
        self.predicted_unlabelled += torch.bincount(predicted[~known], minlength=size)
        pairs = gold[known] * size + predicted[known]
        self.counts += torch.bincount(pairs, minlength=size * size).view(size, size)

    @property
    def total(self) -> int:
        return int(self.counts.sum()) + self.unlabelled

    def merge(self, other: Confusion) -> Confusion:
        """Add `other`'s counts (another share of the same split) to these; returns self."""
        if other.labels != self.labels:
            raise ValueError("Confusion.merge: the two tables have different labels")
        self.counts += other.counts
        self.unlabelled += other.unlabelled
        self.predicted_unlabelled += other.predicted_unlabelled
        return self

    @property
    def correct(self) -> int:
        return int(self.counts.diagonal().sum())

    def metrics(self, per_class: bool = True) -> dict[str, Any]:
        """accuracy, macro_f1 (over the classes present in gold or predictions), and per class
        `precision/NAME`, `recall/NAME`, `f1/NAME` for the classes present; `confusion` holds
        the matrix (`labels`, and `counts[gold][predicted]`). With nothing counted (no item
        had a gold label: unlabelled data) there is nothing to score, and only `confusion`
        is given: a 0 would read as a useless model."""
        matrix = {"labels": self.labels, "counts": self.counts.tolist()}
        if self.total == 0:
            return {"confusion": matrix}
        hits = self.counts.diagonal().double()
        gold = self.counts.sum(1).double()
        predicted = (self.counts.sum(0) + self.predicted_unlabelled).double()
        present = [i for i in range(len(self.labels)) if gold[i] or predicted[i]]
        out: dict[str, Any] = {"accuracy": self.correct / self.total}
        f1s = []
        for i in present:
            precision = float(hits[i] / predicted[i]) if predicted[i] else 0.0
            recall = float(hits[i] / gold[i]) if gold[i] else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            f1s.append(f1)
            if per_class:
                name = self.labels[i]
                out.update({f"precision/{name}": precision, f"recall/{name}": recall})
                out[f"f1/{name}"] = f1
        out["macro_f1"] = sum(f1s) / len(f1s) if f1s else 0.0
        out["confusion"] = matrix
        return out


def _grow(partials: list[float], x: float) -> None:
    """Add `x` to an exact sum kept as non-overlapping floats (Shewchuk's algorithm, as
    `math.fsum` keeps it internally): no rounding happens, so a sum does not depend on the
    order of its additions, nor on how a split was cut into shares."""
    i = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo:
            partials[i] = lo
            i += 1
        x = hi
    partials[i:] = [x]


class Tally:
    """Named sums and `Confusion` tables over the batches of a split: what metrics are made of.

        tally = Tally()
        for batch in batches:
            tally.add("loss_sum", F.cross_entropy(..., reduction="sum"))
            tally.add("words", mask.sum())
            tally.confusion("tags", labels).add(predicted, gold)
        ...
        loss = tally.ratio("loss_sum", "words")

    Sums are exact (kept as error-free partials, rounded once when read), so merging the
    tallies of several processes' shares gives, bit for bit, the sums one process gets over
    the same per-batch values in any order. A name never added reads as 0."""

    def __init__(self) -> None:
        self.sums: dict[str, list[float]] = {}
        self.tables: dict[str, Confusion] = {}

    def add(self, name: str, value: float | int | torch.Tensor) -> None:
        """Add a number (a tensor is summed first) to the sum called `name`."""
        if isinstance(value, torch.Tensor):
            value = value.sum().item()
        _grow(self.sums.setdefault(name, []), float(value))

    def __getitem__(self, name: str) -> float:
        return math.fsum(self.sums.get(name, ()))

    def __contains__(self, name: str) -> bool:
        return name in self.sums or name in self.tables

    def ratio(self, numerator: str, denominator: str, default: float = 0.0) -> float:
        """`numerator / denominator`, or `default` when nothing was counted."""
        below = self[denominator]
        return self[numerator] / below if below else default

    def confusion(self, name: str, labels: Sequence[str]) -> Confusion:
        """The table called `name` (made on first use with `labels`), to `add` to."""
        if name not in self.tables:
            self.tables[name] = Confusion(labels)
        return self.tables[name]

    def merge(self, other: Tally) -> Tally:
        """Add `other` (another share of the same split) to this tally; returns self."""
        for name, partials in other.sums.items():
            mine = self.sums.setdefault(name, [])
            for x in partials:
                _grow(mine, x)
        for name, table in other.tables.items():
            if name in self.tables:
                self.tables[name].merge(table)
            else:
                self.tables[name] = Confusion(table.labels).merge(table)
        return self

    @classmethod
    def merged(cls, tallies: Sequence[Tally]) -> Tally:
        """One tally of several shares (every process's, say)."""
        total = cls()
        for tally in tallies:
            total.merge(tally)
        return total
