"""Search spaces of `zoo sweep`: `--set 'lr=loguniform(1e-4,1e-2)'` read and checked.

A `--set` value of the form `DISTRIBUTION(ARGS)` is searched over; any other value is fixed,
as in `zoo run`. The distributions are Optuna's, spelled as researchers write them:

    uniform(LOW,HIGH)       a float in [LOW, HIGH]
    loguniform(LOW,HIGH)    a float, log scale (0 < LOW)
    int(LOW,HIGH[,STEP])    an integer in [LOW, HIGH]
    logint(LOW,HIGH)        an integer, log scale (1 <= LOW)
    choice(A,B,...)         one of the values given

A value that starts like a search (`loguniform(1e-3`, a `)` missing) is a search spelt wrong,
never a fixed value: it is refused saying what is wrong. Everything is checked before a trial
starts: the syntax, the bounds, and that every value the sampler may pick (both bounds, each
choice) is a valid value of the setting, through the same conversion `zoo run --set` uses.
Every mistake is one `UsageError` line starting `--set KEY`. Nothing here imports torch or
Optuna.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from zoo.core.errors import UsageError

DISTRIBUTIONS = ("uniform", "loguniform", "int", "logint", "choice")
_CALL = re.compile(r"^\s*([A-Za-z_]\w*)\s*\((.*)\)\s*$", re.DOTALL)
_OPENED = re.compile(r"^\s*([A-Za-z_]\w*)\s*\(", re.DOTALL)  # `loguniform(1e-3`: no `)`


@dataclass(frozen=True)
class Dimension:
    """One searched setting: its distribution and arguments (bounds, or the choices)."""

    key: str
    kind: str
    args: tuple[Any, ...]

    def spelled(self) -> str:
        """As written on the command line, `loguniform(0.0001,0.01)`."""
        return f"{self.kind}({','.join(str(a) for a in self.args)})"

    def values_to_check(self) -> list[Any]:
        """Values the sampler may pick that show whether the setting accepts the range."""
        if self.kind == "choice":
            return list(self.args)
        return [self.args[0], self.args[1]]

    def suggest(self, trial: Any) -> Any:
        """This dimension's value for an Optuna trial."""
        low, high = (*self.args, None, None)[:2]
        if self.kind == "uniform":
            return trial.suggest_float(self.key, low, high)
        if self.kind == "loguniform":
            return trial.suggest_float(self.key, low, high, log=True)
        if self.kind == "int":
            step = self.args[2] if len(self.args) > 2 else 1
            return trial.suggest_int(self.key, low, high, step=step)
        if self.kind == "logint":
            return trial.suggest_int(self.key, low, high, log=True)
        return trial.suggest_categorical(self.key, list(self.args))


def is_search(value: Any) -> bool:
    """Whether a `--set` value (or a run file's string) asks for a search: `name(...)`, or
    the start of one of the distributions, `loguniform(...`, whose `)` is missing (refused
    by `parse`, never taken for a fixed value)."""
    if not isinstance(value, str):
        return False
    if _CALL.match(value) is not None:
        return True
    opened = _OPENED.match(value)
    return opened is not None and opened.group(1).lower() in DISTRIBUTIONS


def choice_value(text: str) -> Any:
    """A choice as a number or bool where it reads as one (so importances and the sampler
    see 64 < 128), else the text without surrounding quotes. `nan` and `inf` stay text: a
    choice is compared by equality, which nan fails."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for number in (int, float):
        try:
            value = number(text)
        except ValueError:
            continue
        return value if math.isfinite(value) else text
    return text


def shown(text: str) -> str:
    """A value as a message shows it: on one line, control characters escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text.strip())


def _number(key: str, text: str, integer: bool) -> float | int:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise UsageError(f"--set {key}: '{shown(text)}' is not {kind}") from None
    if not math.isfinite(value):
        raise UsageError(f"--set {key}: bounds must be finite, not {shown(text)}")
    return value


def parse(key: str, text: str) -> Dimension:
    """One search-space value, checked: `parse('lr', 'loguniform(1e-4,1e-2)')`."""
    spelled = f"--set {key}={shown(text)}"
    kind, inner = _call(spelled, text)
    if kind not in DISTRIBUTIONS:
        raise UsageError(
            f"{spelled}: unknown distribution '{shown(kind)}'; valid: {', '.join(DISTRIBUTIONS)}"
        )
    if "(" in inner or ")" in inner:
        raise UsageError(f"{spelled}: unbalanced parentheses; expected {kind}(A,B,...)")
    parts = [p for p in (p.strip() for p in inner.split(",")) if p] if inner.strip() else []
    if kind == "choice":
        if not parts:
            raise UsageError(f"{spelled}: choice() needs at least one value")
        values = tuple(choice_value(p) for p in parts)
        if len(set(map(repr, values))) != len(values):
            raise UsageError(f"{spelled}: a value is given twice")
        return Dimension(key, kind, values)
    return Dimension(key, kind, _bounds(spelled, key, kind, parts))


def _call(spelled: str, text: str) -> tuple[str, str]:
    """(distribution, the text between its parentheses) of `NAME(ARGS)`; what is missing
    from it, said."""
    match = _CALL.match(text)
    if match is not None:
        return match.group(1).lower(), match.group(2)
    if _OPENED.match(text):
        raise UsageError(f"{spelled}: missing ')' at the end; expected DISTRIBUTION(ARGS)")
    raise UsageError(f"{spelled}: expected DISTRIBUTION(ARGS)")


def _bounds(spelled: str, key: str, kind: str, parts: list[str]) -> tuple[Any, ...]:
    integer = kind in ("int", "logint")
    allowed = (2, 3) if kind == "int" else (2,)
    if len(parts) not in allowed:
        what = "LOW,HIGH[,STEP]" if kind == "int" else "LOW,HIGH"
        raise UsageError(f"{spelled}: {kind}() takes {what}")
    numbers = tuple(_number(key, p, integer) for p in parts)
    low, high = numbers[0], numbers[1]
    if low >= high:
        raise UsageError(f"{spelled}: LOW must be below HIGH")
    if kind == "loguniform" and low <= 0:
        raise UsageError(f"{spelled}: a log scale needs 0 < LOW")
    if kind == "logint" and low < 1:
        raise UsageError(f"{spelled}: a log scale needs 1 <= LOW")
    if len(numbers) == 3:
        _step(spelled, low, high, numbers[2])
    return numbers


def _step(spelled: str, low: int, high: int, step: int) -> None:
    """A STEP that reaches HIGH from LOW: Optuna would otherwise lower HIGH, with a warning."""
    if step < 1:
        raise UsageError(f"{spelled}: STEP must be at least 1")
    if (high - low) % step:
        below = low + (high - low) // step * step
        raise UsageError(
            f"{spelled}: HIGH - LOW must be a multiple of STEP (HIGH {below} or {below + step})"
        )


def split(
    settings: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Dimension]]:
    """(fixed settings, searched dimensions) from `--set` and a run file's [settings]."""
    fixed: dict[str, Any] = {}
    space: dict[str, Dimension] = {}
    for key, value in settings.items():
        if is_search(value):
            space[key] = parse(key, value)
        else:
            fixed[key] = value
    return fixed, space


def check(space: Mapping[str, Dimension], convert: Callable[[str, Any], Any]) -> None:
    """Each value the sampler may pick converts as a `--set` of that setting would
    (`convert(key, value)` raises the setting's own error otherwise)."""
    for key, dim in space.items():
        for value in dim.values_to_check():
            try:
                convert(key, str(value) if not isinstance(value, str) else value)
            except UsageError as e:
                raise UsageError(f"--set {key}={dim.spelled()}: {e}") from None


def described(space: Mapping[str, Dimension]) -> dict[str, str]:
    """The space as plain data, kept with the study to tell a rerun from another space."""
    return {key: dim.spelled() for key, dim in sorted(space.items())}
