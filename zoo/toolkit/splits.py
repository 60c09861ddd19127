"""Held-out splits: the settings every dataset shares, and the one rule that applies them.

A dataset config inherits `Fractions` (generated or built-in data) or `HeldOut` (data read
from files), instead of declaring the same six fields again; a subclass may redeclare a field
to change its default (`valid_fraction: float = param(0.0, ...)`).

The rule, in `split`:
- Training (no saved state): the examples are shuffled by `split_seed` and cut into train,
  valid and test by the fractions, except that a split given as a file (`--dev`, `--test`)
  is read from it and takes no fraction. `contiguous=True` cuts in order instead (a text
  stream: train | test | valid, so validation is the end of the file).
- Evaluating a trained model on the file it was trained on (same fingerprint, or built-in
  data): exactly the same split again, so `zoo eval FILE` scores what training held out; when
  training held nothing out for the test, the whole file is the test split.
- Evaluating on any other file: the whole file is the test split.

A dataset that reads files keeps `fingerprint` (`TextFile.fingerprint` of the training file)
in its state for this.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from zoo.core.config import param
from zoo.core.errors import UsageError
from zoo.toolkit.records import positions_dtype, take

T = TypeVar("T")
SPLITS = ("train", "valid", "test")


@dataclass
class Fractions:
    """Shares of the examples held out for validation and test, and the seed of the cut."""

    valid_fraction: float = param(
        0.1, "share of the examples held out for validation", min=0.0, max=0.9
    )
    test_fraction: float = param(
        0.1, "share of the examples held out for the test", min=0.0, max=0.9
    )
    split_seed: int = param(0, "seed of the held-out split (and of generated data)", min=0)


@dataclass
class HeldOut(Fractions):
    """Fractions, plus the files: `--data` (path), `--dev` (dev_path), `--test` (test_path)."""

    path: str | None = param(None, "the data file (--data)")
    dev_path: str | None = param(
        None, "validation file (--dev), used instead of cutting valid_fraction off"
    )
    test_path: str | None = param(
        None, "test file (--test), used instead of cutting test_fraction off"
    )


def split_by_fraction(
    examples: Sequence[T], fractions: Sequence[float], seed: int
) -> list[list[T]]:
    """Shuffle deterministically by `seed` and cut into parts of the given fractions; the last
    part takes the remainder, so no example is dropped. Parts of a list are lists; parts of
    a mapped sequence (`zoo.toolkit.records`) are views of it, nothing copied."""
    if any(f < -1e-9 for f in fractions):
        raise UsageError(
            f"valid_fraction/test_fraction: the held-out shares add up to "
            f"{sum(fractions[1:]):g}; expected at most 1 together"
        )
    order = shuffled(len(examples), seed)
    parts, start = [], 0
    for frac in fractions[:-1]:
        n = round(frac * len(order))
        parts.append(take(examples, order[start : start + n]))
        start += n
    parts.append(take(examples, order[start:]))
    return parts


def shuffled(n: int, seed: int) -> np.ndarray:
    """0 .. n-1 in the order `random.Random(seed).shuffle` puts a list of them (the split
    every dataset has always had), shuffled in an int32 array (int64 above 2**31 examples,
    `positions_dtype`): 4 bytes an example, not a list's 36, for the millions of examples of
    a streamed file. The shuffle only swaps items, so the item type changes nothing."""
    dtype = positions_dtype(n)
    order = array(dtype.char, range(n))  # numpy's char is the C type's, as array's code is
    random.Random(seed).shuffle(order)  # type: ignore[arg-type]  # any mutable sequence
    return np.frombuffer(order, dtype=dtype) if n else np.zeros(0, dtype)


def cut_in_order(examples: Sequence[T], valid: float, test: float) -> tuple[Any, Any, Any]:
    """(train, valid, test) as contiguous slices laid out train | test | valid. Rounding
    both shares up could ask for one example more than there are (3 examples at 0.5 and
    0.5): the test part then gives one back, so no example is in two parts."""
    n_valid = round(len(examples) * valid)
    n_test = min(round(len(examples) * test), len(examples) - n_valid)
    n_train = len(examples) - n_valid - n_test
    return examples[:n_train], examples[n_train + n_test :], examples[n_train : n_train + n_test]


def split(
    examples: Sequence[T],
    config: Any,
    *,
    state: dict[str, Any] | None,
    fingerprint: str | None = None,
    read: Callable[[str], Sequence[T]] | None = None,
    contiguous: bool = False,
) -> dict[str, Sequence[T]]:
    """The train/valid/test splits of `examples` by the rule in the module docstring.

    `fingerprint` identifies the file the examples came from (None for built-in data);
    `read(path)` reads a `--dev`/`--test` file into examples of the same kind."""
    evaluating = state is not None
    # A state without a fingerprint is of generated data, or of a file older than fingerprints.
    if evaluating and state.get("fingerprint", fingerprint) != fingerprint:
        return {"train": examples[:0], "valid": examples[:0], "test": examples}
    files = {"valid": getattr(config, "dev_path", None), "test": getattr(config, "test_path", None)}
    valid_f = 0.0 if files["valid"] else config.valid_fraction
    test_f = 0.0 if files["test"] else config.test_fraction
    if valid_f + test_f > 1 + 1e-9:
        raise UsageError(
            f"valid_fraction + test_fraction = {valid_f + test_f:g}: expected at most 1 together"
        )
    if contiguous:
        parts = dict(zip(SPLITS, cut_in_order(examples, valid_f, test_f)))
    else:
        fractions = [1 - valid_f - test_f, valid_f, test_f]
        parts = dict(zip(SPLITS, split_by_fraction(examples, fractions, config.split_seed)))
    for name, path in files.items():
        if path:
            if read is None:
                raise UsageError(
                    f"this dataset takes no --{'dev' if name == 'valid' else 'test'} file"
                )
            parts[name] = read(path)
    if evaluating and not len(parts["test"]):
        parts["test"] = examples  # training held nothing out: evaluate on the whole file
    return parts
