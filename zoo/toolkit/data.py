"""What a dataset loader returns, and the batching every loader and network needs.

A loader returns `Data`: its splits (lists of examples, any Python objects), a `collate`
function turning a list of examples into a batch (a dict of tensors), and a JSON-ready `state`
(vocabularies, normalisation statistics) that is saved in the model file so a trained model can
encode new input with nothing else at hand.

Here too: `pad` (ragged rows to one tensor), `move` (a batch onto a device), and
`in_length_order`/`map_in_length_order` (inference in batches of similar length, results
back in input order). Vocabularies are in `zoo.vocab`, held-out splits in `zoo.splits`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch

from zoo.core.errors import UsageError
from zoo.core.limits import quoted
from zoo.toolkit.records import position, positions_dtype
from zoo.toolkit.splits import SPLITS
from zoo.toolkit.vocab import Vocab

__all__ = [
    "SPLITS",
    "Data",
    "Part",
    "Shard",
    "Vocab",
    "in_length_order",
    "map_in_length_order",
    "move",
    "pad",
]

T = TypeVar("T")
R = TypeVar("R")


def pad(
    sequences: Sequence[Sequence[Any]], value: float = 0, dtype: torch.dtype = torch.long
) -> torch.Tensor:
    """A [batch, longest] tensor of the sequences, right-padded with `value`; rows of vectors
    (every step a list of numbers) give [batch, longest, size]. Filled from one flat numpy
    array through a mask: several times faster than a tensor per row for the hundreds of short
    rows of a batch (the character rows of a tagger batch, say), which otherwise costs a
    visible share of a training step."""
    n = len(sequences)
    sizes = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=n)
    longest = int(sizes.max()) if n else 0
    np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
    first = next((s[0] for s in sequences if len(s)), None)
    width = () if first is None or np.ndim(first) == 0 else (len(first),)
    out = np.full((n, longest, *width), value, dtype=np_dtype)
    if longest:
        mask = np.arange(longest) < sizes[:, None]
        flat = itertools.chain.from_iterable(sequences)
        if width:
            out[mask] = np.asarray(list(flat), dtype=np_dtype)
        else:
            out[mask] = np.fromiter(flat, dtype=np_dtype, count=int(sizes.sum()))
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


@dataclass(frozen=True)
class Part:
    """Which share of each batch a process takes: `rank` of `world` processes."""

    rank: int = 0
    world: int = 1

    def of(self, items: Sequence[T]) -> Sequence[T]:
        """The contiguous share of `items` for this rank (sizes differ by at most one)."""
        n = len(items)
        return items[self.rank * n // self.world : (self.rank + 1) * n // self.world]


@dataclass
class Shard:
    """A process's part of a global batch: the collated batch, how many of the global batch's
    examples it holds, and how many the global batch has (for weighting its loss)."""

    batch: dict[str, Any]
    examples: int
    total: int


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
        device: torch.device | str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every example of the split exactly once, in batches of at most `batch_size` (the
        dicts `collate` makes), on `device` when given (else where collate put them: the
        CPU). In length buckets when the data says how long an example is."""
        examples = self.splits.get(split, ())
        for idx in self.order(split, batch_size, shuffle=shuffle, generator=generator):
            batch = self.collate([examples[i] for i in idx])
            yield batch if device is None else move(batch, device)

    def order(
        self,
        split: str,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
    ) -> Sequence[np.ndarray]:
        """The split's batches as arrays of example positions: shuffled by `generator`, and
        of similar lengths when the data says how long an example is. `Batches`, views of
        one int32 array (int64 above 2**31 examples), not a list of arrays nor of Python
        ints, so that the order of millions of examples costs 4 bytes each."""
        examples = self.splits.get(split, ())
        n = len(examples)
        if n == 0:
            return []
        if self.length is None:
            order = permutation(n, generator) if shuffle else np.arange(n, dtype=positions_dtype(n))
            return Batches(order, batch_size)
        keys = self.sort_keys(examples)
        if not shuffle:  # stable: ties in the split's order, as in a sort of 0 .. n-1
            return Batches(np.argsort(keys, kind="stable").astype(positions_dtype(n)), batch_size)
        return pooled(permutation(n, generator), keys, batch_size, generator)

    def lengths_of(self, examples: Sequence[Any]) -> np.ndarray:
        """Each example's `length`: stored beside mapped records by this very function
        (zoo.toolkit.records), else computed, one example at a time."""
        stored = getattr(examples, "lengths", None)
        if stored is not None and getattr(examples, "length", None) is self.length:
            return stored
        key = self.length
        assert key is not None
        return np.fromiter((key(e) for e in examples), dtype=np.int64, count=len(examples))

    def sort_keys(self, examples: Sequence[Any]) -> np.ndarray:
        """`lengths_of(examples)` in memory in the smallest integer dtype that holds them, the
        mapped pages handed back: what bucketing sorts by (`compact`)."""
        return compact(self.lengths_of(examples), getattr(examples, "release", None))

    def shards(
        self,
        split: str,
        batch_size: int,
        part: Part,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
    ) -> Iterator[Shard]:
        """This process's share of every batch of `batches` (the same global order on every
        process): a contiguous part of each batch, sizes differing by at most one. A process
        whose share is empty (a last batch smaller than the number of processes) gets one
        example to run with no weight, so that every process takes every step."""
        if type(self).batches is not Data.batches:
            raise UsageError(
                f"{type(self).__name__} batches its data itself and has no shards(): it cannot "
                "be trained on several processes yet"
            )
        examples = self.splits.get(split, ())
        for idx in self.order(split, batch_size, shuffle=shuffle, generator=generator):
            mine = part.of(idx)
            share = mine if len(mine) else idx[:1]
            yield Shard(self.collate([examples[i] for i in share]), len(mine), len(idx))


BLOCK = 1 << 20  # lengths copied between two releases of their mapped pages


def permutation(n: int, generator: torch.Generator | None) -> np.ndarray:
    """`torch.randperm(n, generator=generator)` as int32 while `n` fits (`positions_dtype`):
    randperm draws the same numbers whatever its dtype, so the permutation and the
    generator's next state are those of int64, in half the bytes."""
    dtype = torch.int32 if positions_dtype(n) == np.int32 else torch.int64
    return torch.randperm(n, generator=generator, dtype=dtype).numpy()


def compact(lengths: np.ndarray, release: Callable[[], None] | None = None) -> np.ndarray:
    """`lengths` copied into the smallest integer dtype that holds them (a byte each for
    lengths under 256), a block at a time, calling `release` (a mapped file's
    `Records.release`) after each. Sorting a shuffled order by length reads the lengths at
    random: their 8-byte mapped pages would all stay resident, 54 MB at 6.7 M examples.
    A stable sort of the same values gives the same order whatever their dtype."""
    if lengths.dtype.kind not in "iu" or not len(lengths):
        return lengths
    lo = hi = 0
    for start in range(0, len(lengths), BLOCK):
        block = lengths[start : start + BLOCK]
        lo, hi = min(lo, int(block.min())), max(hi, int(block.max()))
        if release is not None:
            release()
    out = np.empty(len(lengths), smallest_int(lo, hi))
    for start in range(0, len(lengths), BLOCK):
        out[start : start + BLOCK] = lengths[start : start + BLOCK]
        if release is not None:
            release()
    return out


def smallest_int(lo: int, hi: int) -> np.dtype:
    """The smallest integer dtype holding lo .. hi (unsigned when lo >= 0)."""
    if lo >= 0:
        return np.min_scalar_type(hi)
    return np.promote_types(np.min_scalar_type(lo), np.min_scalar_type(-hi - 1))


def pooled(
    order: np.ndarray, keys: np.ndarray, batch_size: int, generator: torch.Generator | None
) -> Batches:
    """Shuffled batches of similar length: each pool of 50 batches of the shuffled `order`
    sorted by `keys` in place (stably: ties keep their shuffled order), then the batches
    shuffled. Pools start at multiples of the batch size, so batch k is always
    order[k * batch_size:][:batch_size]: `Batches` needs no list of them."""
    pool = batch_size * 50
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk[:] = chunk[np.argsort(keys[chunk], kind="stable")]
    count = -(-len(order) // batch_size)
    return Batches(order, batch_size, torch.randperm(count, generator=generator).numpy())


class Batches(Sequence[np.ndarray]):
    """An epoch's batches: `order[k * size:][:size]` for each k in `turns` (None: in turn),
    each a view made when asked for. A list of them would hold an array object (about
    100 bytes) a batch: 10 MB for the 100 k batches of 6.7 M examples."""

    def __init__(self, order: np.ndarray, size: int, turns: np.ndarray | None = None):
        self.order, self.size, self.turns = order, size, turns

    def __len__(self) -> int:
        return -(-len(self.order) // self.size)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = position(i, len(self))
        k = i if self.turns is None else int(self.turns[i])
        return self.order[k * self.size : (k + 1) * self.size]

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))


def in_length_order(
    items: Sequence[T], batch_size: int, length: Callable[[T], int] = len
) -> Iterator[tuple[list[int], list[T]]]:
    """(positions, items) batches for inference, shortest items first: batches of similar
    length waste little work on padding. The positions say where each result belongs."""
    order = sorted(range(len(items)), key=lambda i: length(items[i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        yield chunk, [items[i] for i in chunk]


def map_in_length_order(
    run: Callable[[list[T]], Sequence[R]],
    items: Sequence[T],
    batch_size: int,
    length: Callable[[T], int] = len,
) -> list[R]:
    """`run` over batches of similar length; the results in the order of `items`."""
    results: list[Any] = [None] * len(items)
    for positions, batch in in_length_order(items, batch_size, length):
        for i, result in zip(positions, run(batch)):
            results[i] = result
    return results


FLOAT32_MAX = 3.4028234663852886e38  # the largest finite float32


def parse_numbers(text: str, *, where: str = "input") -> list[list[float]]:
    """'0.1 0.2,0.3 ...' -> one row per whitespace-separated step, commas separating features.

    Raises UsageError naming the bad token, for predict inputs typed by a user.
    """
    plain = _plain_numbers(text)
    if plain is not None:
        return plain
    rows = []
    for token in text.split():
        try:
            row = [float(v) for v in token.split(",") if v != ""]
        except ValueError:
            raise UsageError(f"{where}: {quoted(token)} is not a number") from None
        if not row or not all(math.isfinite(v) for v in row):
            raise UsageError(f"{where}: {quoted(token)} is not a finite number")
        if any(abs(v) > FLOAT32_MAX for v in row):  # the network's float32 would make it inf
            raise UsageError(
                f"{where}: {quoted(token)} is beyond what a 32-bit float holds (about 3.4e38)"
            )
        rows.append(row)
    return rows


def _plain_numbers(text: str) -> list[list[float]] | None:
    """The rows of a text of single finite float32-sized numbers (a served window: 336 of
    them, read in half the time token by token takes); None for anything else, which the full
    parser reads, or refuses naming the token."""
    if "," in text:
        return None
    try:
        values = [float(v) for v in text.split()]
    except ValueError:
        return None
    if not values or not all(map(math.isfinite, values)) or max(map(abs, values)) > FLOAT32_MAX:
        return None
    return [[v] for v in values]
