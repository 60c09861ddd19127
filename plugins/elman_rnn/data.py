"""Data for the Elman RNN: generated sine/cosine sequences and symbol-to-symbol pairs."""

from __future__ import annotations

import math
import random
from typing import Any

import torch

from zoo.data import Data, Vocab, pad, split_by_fraction
from zoo.errors import DataError

HELLO = [("hello", "ohlol")]


def load_sine_cosine(config: Any, state: dict[str, Any] | None) -> Data:
    """Sequences x_t = sin(phi + t*step), y_t = cos(phi + t*step), phi uniform in [0, 2pi)."""
    rng = random.Random(config.split_seed)
    examples = []
    for _ in range(config.num_sequences):
        phi = rng.uniform(0.0, 2.0 * math.pi)
        ts = [phi + k * config.step for k in range(config.length)]
        examples.append(([[math.sin(t)] for t in ts], [[math.cos(t)] for t in ts]))
    valid_f, test_f = config.valid_fraction, config.test_fraction
    train, valid, test = split_by_fraction(
        examples, [1 - valid_f - test_f, valid_f, test_f], config.split_seed
    )
    return Data(
        state=state or {"input_size": 1, "output_size": 1},
        splits={"train": train, "valid": valid, "test": test},
        collate=collate_regression,
        summary=f"sine-cosine: {len(train)}/{len(valid)}/{len(test)} sequences of {config.length} steps",
    )


def collate_regression(
    examples: list[tuple[list[list[float]], list[list[float]]]],
) -> dict[str, torch.Tensor]:
    longest = max(len(x) for x, _ in examples)
    n_in, n_out = len(examples[0][0][0]), len(examples[0][1][0])
    x = torch.zeros(len(examples), longest, n_in)
    y = torch.zeros(len(examples), longest, n_out)
    mask = torch.zeros(len(examples), longest, dtype=torch.bool)
    for i, (xs, ys) in enumerate(examples):
        x[i, : len(xs)] = torch.tensor(xs)
        y[i, : len(ys)] = torch.tensor(ys)
        mask[i, : len(xs)] = True
    return {"x": x, "y": y, "mask": mask, "lengths": mask.sum(1)}


def read_pairs(path: str) -> list[tuple[str, str]]:
    """'input<TAB>target' lines; blank lines skipped; lengths must agree per line."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 2:
                raise DataError("expected 'input<TAB>target'", path=path, line=lineno)
            source, target = parts[0], parts[1]
            if len(source) != len(target) or not source:
                raise DataError(
                    f"input and target must have the same non-zero length "
                    f"({len(source)} vs {len(target)})",
                    path=path,
                    line=lineno,
                )
            pairs.append((source, target))
    if not pairs:
        raise DataError("no pairs found (empty file?)", path=path)
    return pairs


def load_char_pairs(config: Any, state: dict[str, Any] | None) -> Data:
    """Symbol-per-symbol pairs; vocabularies come from the training pairs (or the saved state)."""
    pairs = read_pairs(config.path) if config.path else list(HELLO)
    valid_f, test_f = config.valid_fraction, config.test_fraction
    train, valid, test = split_by_fraction(
        pairs, [1 - valid_f - test_f, valid_f, test_f], config.split_seed
    )
    if state is None:
        state = {
            "input_vocab": Vocab.build([s for s, _ in train]).to_list(),
            "output_vocab": Vocab.build([t for _, t in train], specials=(Vocab.UNK,)).to_list(),
        }
    inputs, outputs = Vocab(state["input_vocab"]), Vocab(state["output_vocab"])
    encoded = {
        name: [(inputs.encode(s), outputs.encode(t)) for s, t in split]
        for name, split in (("train", train), ("valid", valid), ("test", test))
    }
    return Data(
        state=state,
        splits=encoded,
        collate=collate_symbols,
        summary=f"char-pairs: {len(train)}/{len(valid)}/{len(test)} pairs from {config.path or 'hello -> ohlol'}",
    )


def collate_symbols(examples: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
    x = pad([s for s, _ in examples], 0)
    y = pad([t for _, t in examples], -100)
    return {"x": x, "y": y, "lengths": torch.tensor([len(s) for s, _ in examples])}
