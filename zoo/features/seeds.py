"""`zoo run ... --seeds 0-4 [--jobs J]`: the same run on several seeds, mean ± sd of every
metric.

Each seed is a `zoo run --seed S` of its own (J at a time, one thread each unless --threads
says otherwise), with its own model file (`OUT-seedS.safetensors`) and its own row in the run
log, so `zoo compare` pools them again later. A seed that fails is reported and the others go
on; Ctrl-C is passed on to the seeds running (each saves its checkpoint). Nothing here imports
torch.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from zoo.core.errors import UsageError
from zoo.core.formatting import fmt, scores_line
from zoo.core.registry import get_registry
from zoo.features.subprocesses import (
    Children,
    SignalsPassedOn,
    last_error_line,
    wait_for,
    zoo_command,
)


def parse_seeds(text: str, option_name: str = "--seeds") -> list[int]:
    """`0-4` -> [0, 1, 2, 3, 4]; `1,5,9` -> [1, 5, 9]; `3` -> [3]."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            low, dash, high = part.strip().partition("-")
            first, last = int(low), int(high) if dash else int(low)
            if first < 0 or last < first:
                raise ValueError
            seeds += range(first, last + 1)
    except ValueError:
        raise UsageError(
            f"{option_name} {text}: expected seeds as FIRST-LAST or a comma list (0-4, 1,5,9)"
        ) from None
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"{option_name} {text}: a seed is given twice")
    return seeds


def seed_path(out: str, seed: int) -> str:
    """`model.safetensors` -> `model-seed3.safetensors`."""
    path = Path(out)
    suffix = "".join(path.suffixes) or ".safetensors"
    stem = path.name[: len(path.name) - len("".join(path.suffixes))] if path.suffixes else path.name
    return str(path.with_name(f"{stem}-seed{seed}{suffix}"))


def summarise(
    docs: list[dict[str, Any]], headline: tuple[str, ...] = ()
) -> dict[str, dict[str, Any]]:
    """{split: {metric: {mean, sd, n}}} over the seeds' result documents: the architecture's
    `headline` metrics, or without them every score (floats, not counts or per-class)."""
    from zoo.features.compare import summary

    out: dict[str, dict[str, Any]] = {}
    for split in ("valid", "test"):
        scores = docs[0]["metrics"].get(split) or {}
        names = [k for k in headline if k in scores] or [
            k for k, v in scores.items() if "/" not in k and isinstance(v, float)
        ]
        if names:
            values = {n: [(d["metrics"].get(split) or {}).get(n) for d in docs] for n in names}
            out[split] = {n: summary(v) for n, v in values.items()}
    return out


class SeedRuns:
    """Run `arguments` (a `zoo run` command line without seed, output or printing options)
    once per seed, `jobs` at a time."""

    def __init__(self, arguments: list[str], out: str, jobs: int, echo: Callable[[str], None]):
        self.arguments, self.out, self.jobs, self.echo = arguments, out, jobs, echo
        self.children = Children()
        self.results: dict[int, dict[str, Any]] = {}
        self.errors: dict[int, str] = {}
        self.lock = threading.Lock()

    def run(self, seeds: list[int]) -> None:
        queue = list(seeds)
        with tempfile.TemporaryDirectory(prefix="zoo-seeds-") as scratch:

            def work() -> None:
                while True:
                    with self.lock:
                        if not queue or self.children.stopped:
                            return
                        seed = queue.pop(0)
                    self.run_one(seed, Path(scratch))

            threads = [threading.Thread(target=work, daemon=True) for _ in range(self.jobs)]
            with SignalsPassedOn(self.children):
                wait_for(threads)

    def run_one(self, seed: int, scratch: Path) -> None:
        metrics, log = scratch / f"seed{seed}.json", scratch / f"seed{seed}.log"
        command = zoo_command(
            "run", *self.arguments, f"--seed={seed}", f"--out={seed_path(self.out, seed)}"
        )
        started = time.perf_counter()
        code = self.children.run([*command, f"--metrics-out={metrics}", "-q"], log)
        seconds = time.perf_counter() - started
        if code != 0:
            self.errors[seed] = last_error_line(log)
            self.echo(f"seed {seed}: failed ({self.errors[seed]})")
            return
        doc = json.loads(metrics.read_text(encoding="utf-8"))
        self.results[seed] = doc
        self.echo(f"seed {seed}: {headline(doc)} ({seconds:.1f} s) -> {doc['path']}")


def headline(doc: dict[str, Any]) -> str:
    """`valid accuracy 0.95; test accuracy 0.94`: a seed's headline metrics."""
    names = get_registry().headline(doc.get("architecture"))
    return "; ".join(
        f"{split} {scores_line(doc['metrics'][split], names)}"
        for split in ("valid", "test")
        if split in doc["metrics"]
    )


def render(doc: dict[str, Any]) -> Iterable[str]:
    """The summary of `zoo run --seeds`: each metric's mean ± sd (n) per split."""
    seeds = doc["seeds"]
    yield f"{len(doc['runs'])} of {len(seeds)} seed(s) finished; mean ± sd (n):"
    for split, metrics in doc["summary"].items():
        cells = (
            f"{name} {fmt(s['mean'])} ± {fmt(s['sd']) if s['sd'] is not None else '-'} ({s['n']})"
            for name, s in metrics.items()
        )
        yield f"{split:6s} " + "  ".join(cells)
    for failure in doc["failed"]:
        yield f"seed {failure['seed']} failed: {failure['error']}"
