"""How zoo writes numbers and documents for people and programs: one home for the JSON form of
every command's document (`--json`, `--metrics-out`), aligned text tables and the short number
format, shared by the command line and the features that print (seeds, sweeps). Torch-free.
"""

from __future__ import annotations

import json
import math
from typing import Any


def clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null; tuples become lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def to_json(doc: Any) -> str:
    return json.dumps(clean(doc), indent=2, ensure_ascii=False, allow_nan=False)


def table(rows: list[list[str]], headers: list[str], indent: int = 0) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [
        " " * indent + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
        for r in [headers, *rows]
    ]
    return "\n".join(lines)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"{value:.4e}"
        return f"{value:.4f}"
    return str(value)


def headline(scores: dict[str, Any], names: tuple[str, ...] = ()) -> dict[str, Any]:
    """The metrics of `scores` a person is shown: `names` (an architecture's headline, in its
    order; one a split lacks is left out), or without them every plain number (per-class keys
    such as `recall/NOUN` and the confusion matrix left out)."""
    if names:
        return {k: scores[k] for k in names if k in scores}
    return {k: v for k, v in scores.items() if "/" not in k and not isinstance(v, dict)}


def scores_line(scores: dict[str, Any], names: tuple[str, ...] = ()) -> str:
    """`accuracy 0.9512  loss 0.1433`: the headline metrics of `scores` on one line."""
    return "  ".join(f"{k} {fmt(v)}" for k, v in headline(scores, names).items())
