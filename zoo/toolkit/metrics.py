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
"""

from __future__ import annotations

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
