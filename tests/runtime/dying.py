"""Loaders of the worker tests (tests/runtime/test_workers.py), named in a server's spec and
called in each worker process: workers that die or hang while loading, on demand."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.servers import FakeBackend


def backends(die: str, slow: str) -> list[FakeBackend]:
    """One FakeBackend; once the file `die` exists, a worker loading it is killed instead, a
    second into loading (SIGKILL, as the kernel kills one out of memory; the second keeps a
    crash loop from ending the server before a test has asked the other worker), and once
    `slow` exists, it takes a minute to load (a worker still starting)."""
    if Path(die).exists():
        time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGKILL)
    if Path(slow).exists():
        time.sleep(60)
    return [FakeBackend()]


def staggered(first: str, loaded: str) -> list[FakeBackend]:
    """The first worker to load is quick; the others take 3 s more, each then writing the
    time it was done (time.time()) to `loaded`."""
    try:
        os.close(os.open(first, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        time.sleep(3.0)
        Path(loaded).write_text(repr(time.time()))
    return [FakeBackend()]


def stuck() -> list[FakeBackend]:
    """Models that take (nearly) forever to load: a worker never ready."""
    time.sleep(600)
    return [FakeBackend()]
