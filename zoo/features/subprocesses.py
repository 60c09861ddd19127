"""`zoo run` processes started by zoo itself: the seeds of `zoo run --seeds` and the trials
of `zoo sweep`. One home for starting them, waiting for them from several threads, and passing
on Ctrl-C: each child then saves its checkpoint and ends as an interrupted run, as it would in
a terminal, even when the signal reached only the parent (a `kill -INT`, a job scheduler).
Nothing here imports torch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path


def zoo_command(*arguments: str) -> list[str]:
    """`zoo ARGUMENTS...` run by this same Python (so the same installation of zoo)."""
    return [sys.executable, "-m", "zoo", *arguments]


class Children:
    """The child processes running now, so that a signal can be passed on to all of them."""

    def __init__(self) -> None:
        self.running: set[subprocess.Popen[bytes]] = set()
        self.lock = threading.Lock()
        self.stopped = 0  # the signal passed on, once one came

    def run(self, command: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> int:
        """Run `command` with stdout and stderr appended to `log`; its exit code. A child
        asked to start after a stop is not started (exit code 130)."""
        with open(log, "ab") as out, self.lock:
            if self.stopped:
                return 128 + self.stopped
            child = subprocess.Popen(
                list(command), stdout=out, stderr=subprocess.STDOUT, env=dict(env or os.environ)
            )
            self.running.add(child)
        try:
            return child.wait()
        finally:
            with self.lock:
                self.running.discard(child)

    def stop(self, signum: int) -> None:
        """Pass `signum` on to every child running, and start no more."""
        with self.lock:
            self.stopped = signum
            for child in self.running:
                child.send_signal(signum)


class SignalsPassedOn:
    """While in this block, Ctrl-C and SIGTERM go to the children (and `on_stop`) instead of
    raising KeyboardInterrupt in the middle of bookkeeping."""

    def __init__(self, children: Children, on_stop: object = None):
        self.children, self.on_stop = children, on_stop
        self.previous: dict[int, object] = {}

    def handle(self, signum: int, frame: object) -> None:
        """`on_stop` first, then the children: a thread that sees a child refused or ended
        by the signal finds its owner already stopped, and takes it for the interruption."""
        if callable(self.on_stop):
            self.on_stop(signum)
        self.children.stop(signum)

    def __enter__(self) -> SignalsPassedOn:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.previous[signum] = signal.signal(signum, self.handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]


def wait_for(threads: Sequence[threading.Thread]) -> None:
    """Start and join `threads`, waking often so the main thread can take signals."""
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)


def last_error_line(log: Path) -> str:
    """The `Error:` line a failed `zoo run` printed last (else its last line)."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "no output"
    errors = [line for line in lines if line.startswith("Error:")]
    chosen = errors[-1] if errors else (lines[-1] if lines else "no output")
    return chosen.removeprefix("Error:").strip()
