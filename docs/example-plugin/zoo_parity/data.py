"""The parity dataset: generated or read from a file; vocabularies saved as the model's state."""

from __future__ import annotations

import random
from typing import Any

import torch

from zoo.data import Data, Vocab, pad, split_by_fraction
from zoo.errors import DataError


def generate(count: int, max_length: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        bits = "".join(rng.choice("01") for _ in range(rng.randint(1, max_length)))
        out.append((bits, "odd" if bits.count("1") % 2 else "even"))
    return out


def read(path: str) -> list[tuple[str, str]]:
    pairs = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 2 or not parts[0]:
                raise DataError("expected 'bits<TAB>label'", path=path, line=lineno)
            pairs.append((parts[0], parts[1]))
    if not pairs:
        raise DataError("no examples (empty file?)", path=path)
    return pairs


def collate(examples: list[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
    return {
        "symbols": pad([s for s, _ in examples]),
        "lengths": torch.tensor([len(s) for s, _ in examples]),
        "label": torch.tensor([y for _, y in examples]),
    }


def load_parity(config: Any, state: dict[str, Any] | None) -> Data:
    if config.path:
        pairs = read(config.path)
    else:
        pairs = generate(config.num_examples, config.max_length, config.split_seed)
    v, t = config.valid_fraction, config.test_fraction
    splits = dict(
        zip(
            ("train", "valid", "test"),
            split_by_fraction(pairs, [1 - v - t, v, t], config.split_seed),
        )
    )
    if state is None:
        state = {
            "symbols": Vocab.build([s for s, _ in splits["train"]]).to_list(),
            "labels": sorted({y for _, y in splits["train"]}),
        }
    symbols, labels = Vocab(state["symbols"]), state["labels"]
    encoded = {}
    for name, items in splits.items():
        unknown = {y for _, y in items} - set(labels)
        if unknown:
            raise DataError(f"labels {sorted(unknown)} are not among the model's {labels}")
        encoded[name] = [(symbols.encode(s), labels.index(y)) for s, y in items]
    return Data(state=state, splits=encoded, collate=collate, length=lambda ex: len(ex[0]))
