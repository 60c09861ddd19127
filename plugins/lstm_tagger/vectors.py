"""Pretrained word vectors from a word2vec or GloVe text file, for the tagger's embeddings.

One word a line followed by its values, separated by spaces; word2vec's optional first line
"COUNT SIZE" is recognised and skipped. The file is streamed and only the words of the model's
vocabulary are kept, so a multi-gigabyte file costs one pass and little memory.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

from zoo.core.errors import DataError
from zoo.toolkit.textfile import stream_lines


def read_vectors(
    path: str | os.PathLike[str], wanted: dict[str, int], size: int, key: Callable[[str], str]
) -> dict[int, list[float]]:
    """{row in `wanted`: vector} for the file's words whose `key(word)` is in `wanted`; the
    first vector of a word wins (files list frequent spellings first)."""
    name = os.fspath(path)
    found: dict[int, list[float]] = {}
    lines = 0
    for lineno, line in stream_lines(name):
        parts = line.rstrip(" ").split(" ")
        if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
            continue  # word2vec header: COUNT SIZE
        if not line.strip():
            continue
        lines += 1
        if len(parts) != size + 1:
            raise DataError(
                f"expected a word and {size} numbers (the model's embedding_dim), "
                f"got {len(parts) - 1} values",
                path=name,
                line=lineno,
            )
        row = wanted.get(key(parts[0]))
        if row is None or row in found:
            continue
        try:
            values = [float(v) for v in parts[1:]]
        except ValueError:
            raise DataError(
                f"a value of {parts[0]!r} is not a number", path=name, line=lineno
            ) from None
        if not all(math.isfinite(v) for v in values):
            raise DataError(f"{parts[0]!r} has a value that is not finite", path=name, line=lineno)
        found[row] = values
    if not lines:
        raise DataError("no vectors: expected 'word value value ...' lines", path=name)
    return found
