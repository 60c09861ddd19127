"""The runtime's twin of `zoo.core.limits`: one input's length in the unit the model reads,
checked against the limit the export wrote (`runtime.input_limit`) before any array is made.
tests/runtime/test_files.py holds the two to the same answers and wording."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from .onnxfile import SettingError, UsageError

UNITS = ("characters", "words", "steps")
OPTION = "max_input_length"
REQUEST_OPTION = "max_inputs"
MAX_INPUTS = 100_000  # inputs in one request (one `zoo-runtime`, one predict call)


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


@dataclass(frozen=True)
class InputLimit:
    """The most `unit`s one input may have (None: no limit), and the most inputs in one
    request: zoo.core.limits.InputLimit."""

    unit: str
    maximum: int | None
    inputs: int = MAX_INPUTS

    def check_count(self, count: int, what: str) -> None:
        """`what` names the request (the file, `the inputs`)."""
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


_ACTIVE: ContextVar[InputLimit | None] = ContextVar("zoo_runtime_input_limit", default=None)


@contextmanager
def active(limit: InputLimit) -> Iterator[None]:
    """Make `limit` the one `check_input` applies while a recipe's predict runs: inputs a
    recipe assembles (numbers one an argument, read as one window) are checked against the
    limit of the call, and a nested predict does not check again."""
    token = _ACTIVE.set(limit)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def current() -> InputLimit | None:
    return _ACTIVE.get()


def check_input(value: Any, where: str) -> None:
    """Check one input a recipe assembled against the limit of the call running, if any."""
    limit = _ACTIVE.get()
    if limit is not None:
        limit.check(value, where)


def parse_override(value: Any, option: str = OPTION) -> int:
    """`--set max_input_length=N` or `max_inputs=N`: a whole number of at least 1."""
    try:
        number = int(str(value).strip().replace("_", ""))
    except ValueError:
        number = 0
    if number < 1:
        raise SettingError(f"{option}={clip(str(value))}: expected a whole number of at least 1")
    return number
