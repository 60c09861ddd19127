"""Training progress on stderr, so stdout stays clean for results and `--json`.

On a terminal one line is redrawn in place; elsewhere (CI logs, pipes) a line is printed per
epoch and at most every 30 seconds within an epoch.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Progress:
    """Prints training progress; `enabled=False` makes it silent (the Python API default)."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None, every: float = 30.0):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.live = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = every
        self.total = 0
        self.epochs = 0
        self.t0 = time.perf_counter()
        self.last_print = self.t0
        self.loss_sum = 0.0
        self.loss_n = 0
        self.first_step = 0  # where this session began (a resumed run starts past 0)

    def _write(self, text: str, *, final: bool = True) -> None:
        if not self.enabled:
            return
        if self.live:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def start(self, total_steps: int, epochs: int, at_step: int = 0) -> None:
        self.total, self.epochs, self.first_step = total_steps, epochs, at_step
        self.t0 = self.last_print = time.perf_counter()

    def time_left(self, step: int, now: float) -> str:
        """The time the remaining steps take at the pace so far (validation included), as
        `1h02m`, `3m05s` or `12s`; empty before the first step."""
        done = step - self.first_step
        if done <= 0 or step >= self.total:
            return ""
        seconds = round((self.total - step) * (now - self.t0) / done)
        hours, rest = divmod(seconds, 3600)
        minutes, secs = divmod(rest, 60)
        text = (
            f"{hours}h{minutes:02d}m"
            if hours
            else f"{minutes}m{secs:02d}s"
            if minutes
            else f"{secs}s"
        )
        return f", {text} left"

    def step(self, step: int, epoch: int, loss: float) -> None:
        self.loss_sum += loss
        self.loss_n += 1
        if not self.enabled:
            return
        now = time.perf_counter()
        due = now - self.last_print >= (0.2 if self.live else self.every)
        if due or step == self.total:
            self.last_print = now
            rate = (step - self.first_step) / max(now - self.t0, 1e-9)
            width = 24
            filled = int(width * step / max(self.total, 1))
            bar = "#" * filled + "-" * (width - filled)
            self._write(
                f"epoch {epoch}/{self.epochs} [{bar}] step {step}/{self.total} "
                f"loss {self.loss_sum / max(self.loss_n, 1):.4f} {rate:.1f} steps/s"
                f"{self.time_left(step, now)}",
                final=not self.live,
            )

    def validation(self, step: int, scores: dict[str, float], improved: bool) -> None:
        # the trainer passes the headline metrics (zoo.core.formatting.headline)
        shown = " ".join(f"{k} {_fmt(v)}" for k, v in scores.items())
        self._write(f"  step {step}: valid {shown}{' *' if improved else ''}")

    def epoch(self, epoch: int, step: int, train_loss: float) -> None:
        now = time.perf_counter()
        self._write(
            f"epoch {epoch}/{self.epochs} done: step {step}/{self.total} "
            f"train loss {train_loss:.4f} ({now - self.t0:.1f}s{self.time_left(step, now)})"
        )
        self.loss_sum, self.loss_n = 0.0, 0

    def finish(self) -> None:
        pass

    def info(self, text: str) -> None:
        self._write(text)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
