"""Input limits: how long one input to `predict` may be, counted in the unit the model reads.

Without a limit one line of a megabyte asks the seq2seq model for gigabytes. Each architecture
declares its unit (`Architecture.input_unit`: characters, words or steps) and a default
maximum (`Architecture.max_input_length`); `--set max_input_length=N` raises or lowers it for
one command. The check counts before any tensor is made. The ONNX runtime applies the same
rule from the exported metadata (`runtime.input_limit`); `zoo_runtime.limits` is this module's
twin and tests/runtime/test_files.py keeps the two saying the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from zoo.core.errors import SettingError, UsageError

UNITS = ("characters", "words", "steps")
OPTION = "max_input_length"
REQUEST_OPTION = "max_inputs"
MAX_INPUTS = 100_000  # inputs in one request (one `zoo predict`, one HTTP call)


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


def quoted(text: str, limit: int = 60) -> str:
    """`repr(text)`, cut to `limit` characters with the full length said: for error lines."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


@dataclass(frozen=True)
class InputLimit:
    """The most `unit`s one input may have (None: no limit), and the most inputs in one
    request."""

    unit: str
    maximum: int | None
    inputs: int = MAX_INPUTS

    def check_count(self, count: int, what: str) -> None:
        """`what` names the request (`--input in.txt`, `the INPUT arguments`)."""
        if count > self.inputs:
            raise UsageError(
                f"{what}: {count:,} inputs, over the limit of {self.inputs:,} for one request; "
                f"raise it with --set {REQUEST_OPTION}=N, or split the inputs"
            )

    def check(self, value: Any, where: str) -> None:
        """Raise UsageError naming `where` when `value` is over the limit."""
        if self.maximum is None:
            return
        length = input_length(value, self.unit)
        if length > self.maximum:
            raise UsageError(over_limit_message(where, length, self.unit, self.maximum))

    def check_all(self, values: Iterable[Any], where: Callable[[int], str]) -> None:
        """Check each value; `where(i)` names the i-th (0-based)."""
        for i, value in enumerate(values):
            self.check(value, where(i))


_ACTIVE: ContextVar[InputLimit | None] = ContextVar("zoo_input_limit", default=None)


@contextmanager
def active(limit: InputLimit) -> Iterator[None]:
    """Make `limit` the one `check_input` applies while a plugin's predict_file runs."""
    token = _ACTIVE.set(limit)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def check_input(value: Any, where: str) -> None:
    """For plugins reading a structured format (a CoNLL-U sentence spread over many lines):
    check one input they assembled against the limit of the command running, if any."""
    limit = _ACTIVE.get()
    if limit is not None:
        limit.check(value, where)


def check_inputs(values: Sequence[Any], where: Callable[[int], str], what: str) -> None:
    """`check_input` for each of a request's inputs, and their count (`what` names the
    request, e.g. the file)."""
    limit = _ACTIVE.get()
    if limit is not None:
        limit.check_count(len(values), what)
        limit.check_all(values, where)


def parse_override(value: Any, option: str = OPTION) -> int:
    """`--set max_input_length=N` or `max_inputs=N`: a whole number of at least 1."""
    try:
        number = int(str(value).strip().replace("_", ""))
    except ValueError:
        number = 0
    if number < 1:
        raise SettingError(f"{option}={clip(str(value))}: expected a whole number of at least 1")
    return number
