"""A text file of any size for the character language model, in bounded memory.

`load_text` reads a small text whole; above `STREAM_ABOVE` bytes it comes here, where the file
is read in chunks (`zoo.toolkit.textfile.TextChunks`: the same errors, line and column, and the
same fingerprint) three times: to count its characters, to build the vocabulary of the
training part (the same order as `Vocab.build`: by falling count, ties by first appearance),
and to write the ids, a byte each for most texts, into one flat file per split. The splits are
memory maps of those files, so the ids of a 4 GB text never sit in memory; zoo's
prepared-data cache then copies the files and maps them on later runs.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from zoo.toolkit.splits import SPLITS, cut_in_order
from zoo.toolkit.textfile import TextChunks
from zoo.toolkit.vocab import Vocab

STREAM_ABOVE = int(os.environ.get("ZOO_TEXT_STREAM_ABOVE", 64 << 20))
CHUNK = 16 << 20


def wanted(config: Any, state: dict[str, Any] | None) -> bool:
    """Whether to stream: a plain text file larger than STREAM_ABOVE bytes, to train on or
    to score with a trained model (`state`)."""
    if not config.path:
        return False
    if config.format == "conllu" or (
        config.format == "auto" and str(config.path).lower().endswith(".conllu")
    ):
        return False
    try:
        return os.path.getsize(config.path) > STREAM_ABOVE
    except OSError:
        return False  # the reader says what is wrong with it


def normalised(chunks: Iterable[str]) -> Iterator[str]:
    """The chunks with '\\r\\n' and '\\r' as '\\n' (as `text_lines`), across chunk bounds."""
    cr = False
    for text in chunks:
        if cr:
            text = "\r" + text
        cr = text.endswith("\r")
        if cr:
            text = text[:-1]
        yield text.replace("\r\n", "\n").replace("\r", "\n")
    if cr:
        yield "\n"


def codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def measure(reader: TextChunks) -> tuple[int, bool]:
    """(characters, whether any is not white space): the first pass."""
    total, visible = 0, False
    for text in normalised(reader):
        total += len(text)
        visible = visible or not text.isspace()
    return total, visible


def vocabulary(reader: TextChunks, train: int, min_count: int) -> Vocab:
    """The vocabulary of the first `train` characters, as `Vocab.build` makes it. Counted per
    chunk with `numpy.bincount` over code points (linear time); a character's first position
    is looked up once, in the chunk where it first appears."""
    counts = np.zeros(0, dtype=np.int64)  # as long as the largest code point seen
    first: dict[int, int] = {}
    done = 0
    for text in normalised(reader):
        if done >= train:
            break
        cps = codepoints(text[: train - done])
        here = np.bincount(cps)
        if len(here) > len(counts):
            counts = np.concatenate([counts, np.zeros(len(here) - len(counts), np.int64)])
        for c in np.flatnonzero(here).tolist():
            if c not in first:
                first[c] = done + int(np.argmax(cps == c))
        counts[: len(here)] += here
        done += len(cps)
    kept = [c for c in first if counts[c] >= min_count]
    ranked = sorted(kept, key=lambda c: (-int(counts[c]), first[c]))
    return Vocab([Vocab.UNK, *map(chr, ranked)], unk=Vocab.UNK)


def write_ids(
    reader: TextChunks, vocab: Vocab, bounds: dict[str, range], dtype: np.dtype
) -> dict[str, np.ndarray]:
    """The third pass: each split's ids in a temporary file of its own, mapped back. The files
    are removed when their maps are (Linux keeps a mapped file until then)."""
    lut = np.full(0x110000, vocab.unk_id, dtype=dtype)
    for i, token in enumerate(vocab.tokens):
        if len(token) == 1:
            lut[ord(token)] = i
    folder = tempfile.mkdtemp(prefix="zoo-text-")
    paths = {name: os.path.join(folder, f"{name}.ids") for name in bounds}
    files = {name: open(path, "wb") for name, path in paths.items()}  # noqa: SIM115
    try:
        at = 0
        for text in normalised(reader):
            ids = lut[codepoints(text)]
            for name, span in bounds.items():
                lo, hi = max(span.start, at) - at, min(span.stop, at + len(ids)) - at
                if lo < hi:
                    files[name].write(ids[lo:hi].tobytes())
            at += len(ids)
    finally:
        for f in files.values():
            f.close()
    maps = {name: _mapped(paths[name], dtype) for name in bounds}
    with contextlib.suppress(OSError):  # every split empty: no map keeps the folder
        os.rmdir(folder)
    return maps


def _mapped(path: str, dtype: np.dtype) -> np.ndarray:
    if os.path.getsize(path) == 0:
        os.unlink(path)
        return np.empty(0, dtype=dtype)
    ids = np.memmap(path, dtype=dtype, mode="r")
    weakref.finalize(ids, _remove, path)
    return ids


def _remove(path: str) -> None:
    """A split's file, then its folder once empty."""
    with contextlib.suppress(OSError):
        os.unlink(path)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(path))


def spans(total: int, valid: float, test: float) -> dict[str, range]:
    """Where each split lies in the text: train | test | valid (`cut_in_order`)."""
    train_r, valid_r, test_r = cut_in_order(range(total), valid, test)
    return dict(zip(SPLITS, (train_r, valid_r, test_r)))
