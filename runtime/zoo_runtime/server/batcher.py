"""Dynamic batching: concurrent requests to one model share a predict call.

Each model has a queue. A request, checked before it joins (so a bad input never reaches a
batch), waits until its batch runs: when the queue holds `max_batch` inputs of requests that
may be joined, or when the oldest has waited `max_wait` seconds. A lone caller does not wait:
while recent batches held one request each (one client), a request runs at once; under load
(batches of several requests) the wait lets a batch fill. Requests join only with requests of
the same options, and only where the model's answers do not depend on what else is in the
call (`backend.mergeable`). Inference runs in one thread per model, off the event loop.

If a joined call raises, its requests are predicted again one by one, so only the request
whose input fails gets the error. A request whose caller went away is dropped before its batch
runs, or its answer discarded; it never holds others up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .backend import Backend
from .metrics import Metrics

ALONE = 0.2  # EWMA weight of the last batch's request count, which says whether to wait


@dataclass
class Pending:
    """One request waiting in a queue."""

    inputs: list[str]
    options: dict[str, Any]
    key: str | None  # requests with the same key may join; None: runs alone
    future: asyncio.Future[list[dict[str, Any]]]
    arrived: float = field(default_factory=time.monotonic)


class Batcher:
    """The queue and the inference thread of one model."""

    def __init__(self, backend: Backend, metrics: Metrics, max_batch: int, max_wait: float):
        self.backend, self.max_batch, self.max_wait = backend, max_batch, max_wait
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"zoo-{backend.name}")
        self.pending: deque[Pending] = deque()
        self.queued = 0
        self.wake: asyncio.Event | None = None
        self.task: asyncio.Task[None] | None = None
        self.load = 1.0  # moving average of requests per batch
        m, name = metrics, backend.name
        self.m_queue = m.queued.labels(name)
        self.m_inputs, self.m_requests = m.batch_inputs.labels(name), m.batch_requests.labels(name)

    def start(self) -> None:
        self.wake = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """After the server has drained: end the loop, fail anything left, free the thread."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        for item in self.pending:
            if not item.future.done():
                item.future.set_exception(RuntimeError("the server is shutting down"))
        self.executor.shutdown(wait=False)

    async def submit(self, inputs: list[str], options: dict[str, Any]) -> list[dict[str, Any]]:
        """The answers to one checked request, in the order of its inputs."""
        joinable = self.backend.mergeable(inputs, options)
        key = json.dumps(options, sort_keys=True) if joinable else None
        future: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self.pending.append(Pending(inputs, options, key, future))
        self.queued += len(inputs)
        self.m_queue.set(self.queued)
        assert self.wake is not None
        self.wake.set()
        return await future

    async def _loop(self) -> None:
        assert self.wake is not None
        while True:
            self._drop_abandoned()
            if not self.pending:
                self.wake.clear()
                await self.wake.wait()
                continue
            first = self.pending[0]
            if self._should_wait(first):
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self._left(first))
                continue
            batch = self._take(first)
            try:
                await self._run(batch)
            except Exception as e:  # a bug here must not stop the queue: its callers learn it
                for item in batch:
                    _settle(item, error=e)

    def _left(self, first: Pending) -> float:
        return first.arrived + self.max_wait - time.monotonic()

    def _should_wait(self, first: Pending) -> bool:
        """Wait for others to join `first` while it may join, load says others are coming,
        its batch is not full and it has time left."""
        if first.key is None or self.load <= 1.0 + ALONE or self._left(first) <= 0:
            return False
        return self._joinable(first.key) < self.max_batch

    def _drop_abandoned(self) -> None:
        while self.pending and self.pending[0].future.done():
            self._forget(self.pending.popleft())

    def _forget(self, item: Pending) -> None:
        self.queued -= len(item.inputs)
        self.m_queue.set(self.queued)

    def _joinable(self, key: str) -> int:
        return sum(len(p.inputs) for p in self.pending if p.key == key and not p.future.done())

    def _take(self, first: Pending) -> list[Pending]:
        """The first request and, if it may join, the next of its key up to max_batch inputs."""
        self.pending.popleft()
        self._forget(first)
        batch, count = [first], len(first.inputs)
        if first.key is None:
            return batch
        kept: deque[Pending] = deque()
        while self.pending:
            item = self.pending.popleft()
            if item.future.done():
                self._forget(item)
            elif item.key == first.key and count + len(item.inputs) <= self.max_batch:
                batch.append(item)
                count += len(item.inputs)
                self._forget(item)
            else:
                kept.append(item)
        self.pending = kept
        return batch

    async def _run(self, batch: list[Pending]) -> None:
        live = [p for p in batch if not p.future.done()]
        if not live:
            return
        self.load += ALONE * (len(live) - self.load)
        inputs = [x for p in live for x in p.inputs]
        self.m_inputs.observe(len(inputs))
        self.m_requests.observe(len(live))
        try:
            answers = await self._predict(inputs, live[0].options)
        except Exception as e:
            if len(live) == 1:
                _settle(live[0], error=e)
                return
            for item in live:  # find the request that fails: only it gets the error
                await self._run_alone(item)
            return
        if len(live) > 1 and len(answers) != len(inputs):  # the inputs were read together
            for item in live:
                await self._run_alone(item)
            return
        if len(live) == 1:
            _settle(live[0], answers)
            return
        start = 0
        for item in live:
            _settle(item, answers[start : start + len(item.inputs)])
            start += len(item.inputs)

    async def _run_alone(self, item: Pending) -> None:
        if item.future.done():
            return
        try:
            _settle(item, await self._predict(item.inputs, item.options))
        except Exception as e:
            _settle(item, error=e)

    async def _predict(self, inputs: list[str], options: dict[str, Any]) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self.backend.predict, inputs, options)


def _settle(
    item: Pending, answers: list[dict[str, Any]] | None = None, error: BaseException | None = None
) -> None:
    """Give the caller its answers or error, unless it went away."""
    if item.future.done():
        return
    if error is not None:
        item.future.set_exception(error)
    else:
        item.future.set_result(answers or [])
