"""The runtime's twin of `zoo.core.limits`: one input's length in the unit the model reads,
checked against the limit the export wrote (`runtime.input_limit`) before any array is made.
tests/runtime/test_files.py holds the two to the same answers and wording."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

UNITS = ("characters", "words", "steps")
OPTION = "max_input_length"


def input_length(value: Any, unit: str) -> int:
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
    return (
        f"{where}: {length:,} {unit}, over the limit of {limit:,} {unit} for one input; "
        f"raise it with --set {OPTION}=N"
    )


def clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def quoted(text: str, limit: int = 60) -> str:
    """`repr(text)`, cut to `limit` characters with the full length said: for error lines."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"
