"""What a dataset loader returns, and the small pieces every loader needs.

A loader returns `Data`: its splits (lists of examples, any Python objects), a `collate`
function turning a list of examples into a batch (a dict of tensors), and a JSON-ready `state`
(vocabularies, normalisation statistics) that is saved in the model file so a trained model can
encode new input with nothing else at hand.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from zoo.errors import UsageError

SPLITS = ("train", "valid", "test")


class Vocab:
    """A token <-> index table with special symbols first, saved as a plain list of strings."""

    PAD = "<pad>"
    UNK = "<unk>"
    BOS = "<s>"
    EOS = "</s>"

    def __init__(self, tokens: Sequence[str], unk: str | None = UNK):
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("vocabulary has duplicate tokens")
        self.unk_id = self.index[unk] if unk is not None and unk in self.index else None

    @classmethod
    def build(
        cls,
        sequences: Iterable[Iterable[str]],
        *,
        specials: Sequence[str] = (PAD, UNK),
        min_count: int = 1,
        max_size: int | None = None,
    ) -> Vocab:
        """Specials first, then tokens by falling frequency (ties by first appearance)."""
        counts: Counter[str] = Counter()
        for seq in sequences:
            counts.update(seq)
        ranked = [t for t, c in counts.most_common() if c >= min_count and t not in specials]
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(specials))]
        return cls([*specials, *ranked], unk=cls.UNK if cls.UNK in specials else None)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def id(self, token: str) -> int:
        i = self.index.get(token)
        if i is not None:
            return i
        if self.unk_id is None:
            raise KeyError(token)
        return self.unk_id

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.id(t) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    def to_list(self) -> list[str]:
        return list(self.tokens)


def pad(
    sequences: Sequence[Sequence[int]], value: int = 0, dtype: torch.dtype = torch.long
) -> torch.Tensor:
    """A [batch, longest] tensor of the sequences, right-padded with `value`. Filled from one
    flat numpy array through a mask: several times faster than a tensor per row for the
    hundreds of short rows of a batch (the character rows of a tagger batch, say), which
    otherwise costs a visible share of a training step."""
    n = len(sequences)
    sizes = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=n)
    longest = int(sizes.max()) if n else 0
    np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
    out = np.full((n, longest), value, dtype=np_dtype)
    if longest:
        flat = itertools.chain.from_iterable(sequences)
        out[np.arange(longest) < sizes[:, None]] = np.fromiter(
            flat, dtype=np_dtype, count=int(sizes.sum())
        )
    return torch.from_numpy(out)


def lengths(sequences: Sequence[Sequence[Any]]) -> torch.Tensor:
    return torch.tensor([len(s) for s in sequences], dtype=torch.long)


def move(batch: Any, device: torch.device | str) -> Any:
    """The batch with every tensor in it on `device` (dicts, lists and tuples walked)."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move(v, device) for v in batch)
    return batch


def split_by_fraction(
    examples: Sequence[Any], fractions: Sequence[float], seed: int
) -> list[list[Any]]:
    """Shuffle deterministically by `seed` and cut into parts of the given fractions; the last
    part takes the remainder, so no example is dropped. Held-out fractions that add up to more
    than 1 would make parts overlap: that is refused."""
    if any(f < -1e-9 for f in fractions):
        held_out = sum(fractions[1:])
        raise UsageError(
            f"--set valid_fraction/test_fraction: the held-out shares add up to {held_out:g}; "
            "expected at most 1 together"
        )
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    parts, start = [], 0
    for frac in fractions[:-1]:
        n = round(frac * len(order))
        parts.append([examples[i] for i in order[start : start + n]])
        start += n
    parts.append([examples[i] for i in order[start:]])
    return parts


@dataclass
class Data:
    """A loaded dataset: splits of examples, how to batch them, and the state to save.

    `length`, when given, enables length bucketing: batches hold examples of similar length,
    which saves most of the padding work for recurrent models.
    """

    state: dict[str, Any]
    splits: dict[str, Sequence[Any]]
    collate: Callable[[Sequence[Any]], dict[str, Any]]
    length: Callable[[Any], int] | None = None
    # One line saying where the data came from (file names, sizes), shown by `zoo run`.
    summary: str = ""
    # Extra facts for the model file and `zoo eval` (e.g. which split was evaluated).
    info: dict[str, Any] = field(default_factory=dict)

    def size(self, split: str) -> int:
        return len(self.splits.get(split, ()))

    def has(self, split: str) -> bool:
        return self.size(split) > 0

    def batches(
        self,
        split: str,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every example of the split exactly once, in batches of at most `batch_size`."""
        examples = self.splits.get(split, ())
        n = len(examples)
        if n == 0:
            return
        order = torch.randperm(n, generator=generator).tolist() if shuffle else list(range(n))
        if self.length is not None:
            order = self._bucket(examples, order, batch_size, shuffle, generator)
        else:
            order = [order[i : i + batch_size] for i in range(0, n, batch_size)]
        for idx in order:
            yield self.collate([examples[i] for i in idx])

    def _bucket(
        self,
        examples: Sequence[Any],
        order: list[int],
        batch_size: int,
        shuffle: bool,
        generator: torch.Generator | None,
    ) -> list[list[int]]:
        key = self.length
        assert key is not None
        if not shuffle:
            order = sorted(order, key=lambda i: key(examples[i]))
            return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        pool = batch_size * 50
        batches = []
        for start in range(0, len(order), pool):
            chunk = sorted(order[start : start + pool], key=lambda i: key(examples[i]))
            batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
        perm = torch.randperm(len(batches), generator=generator).tolist()
        return [batches[i] for i in perm]


def parse_numbers(text: str, *, where: str = "input") -> list[list[float]]:
    """'0.1 0.2,0.3 ...' -> one row per whitespace-separated step, commas separating features.

    Raises UsageError naming the bad token, for predict inputs typed by a user.
    """
    rows = []
    for token in text.split():
        try:
            row = [float(v) for v in token.split(",") if v != ""]
        except ValueError:
            raise UsageError(f"{where}: {token!r} is not a number") from None
        if not row or not all(math.isfinite(v) for v in row):
            raise UsageError(f"{where}: {token!r} is not a finite number")
        rows.append(row)
    return rows
