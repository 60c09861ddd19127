"""Input limits: how long one input to `predict` may be, counted in the unit the model reads.

Without a limit one line of a megabyte asks the seq2seq model for gigabytes. Each architecture
declares its unit (`Architecture.input_unit`: characters, words or steps) and a default
maximum (`Architecture.max_input_length`); `--set max_input_length=N` raises or lowers it for
one command. The check counts before any tensor is made. The ONNX runtime applies the same
rule from the exported metadata (`runtime.input_limit`); `zoo_runtime.limits` is this module's
twin and tests/runtime/test_files.py keeps the two saying the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

UNITS = ("characters", "words", "steps")
OPTION = "max_input_length"


def input_length(value: Any, unit: str) -> int:
    """The length of one input in `unit`: characters of a text, its whitespace-separated words,
    or the numbers of a series (comma- or space-separated in a text, items in a sequence)."""
    if isinstance(value, str):
        if unit == "characters":
            return len(value)
        if unit == "steps":
            return len(value.replace(",", " ").split())
        return len(value.split())
    if isinstance(value, Sequence):
        return len(value)
    return 1


def over_limit_message(where: str, length: int, unit: str, limit: int) -> str:
    """`where` names the input (`input 2`, `in.txt:3`)."""
    return (
        f"{where}: {length:,} {unit}, over the limit of {limit:,} {unit} for one input; "
        f"raise it with --set {OPTION}=N"
    )


def clip(text: str, limit: int = 60) -> str:
    """A user's value quoted in an error line, cut to `limit` characters: a megabyte of bad
    input must not become a megabyte of error."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"
