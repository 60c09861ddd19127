"""Dynamic batching: concurrent requests to one model share a predict call.

Each model has a queue. A request, checked before it joins (so a bad input never reaches a
batch), waits until its batch runs: when the queue holds `max_batch` inputs of requests that
may be joined, or when the oldest has waited `max_wait` seconds. A lone caller does not wait:
while recent batches held one request each (one client), a request runs at once; under load
(batches of several requests) the wait lets a batch fill. Requests join only with requests of
the same options, and only where the model's answers do not depend on what else is in the
call (`backend.mergeable`).

Where a call runs: a call expected to take under `INLINE_SECONDS` runs in the event loop
itself, any other in the model's inference thread. Handing a call to a thread costs little
for onnxruntime, which takes Python's lock once a call, but torch takes and gives it back at
every operation, and a thread woken for each call costs a wake-up each way: run in the loop,
the EWT tagger answered one client 11% faster through torch (336 against 302 req/s) and 14%
through onnxruntime, and 64 clients through torch 3-15% faster (docs/results/serve.md).
A call that takes long must not stop the loop (health checks, timeouts, other models), so the
expectation is measured: seconds per input character of this model's recent calls with the
same options (`CallTimes`); a call of options never timed, or expected to take longer, goes to
the thread.

If a joined call raises, its requests are predicted again one by one, so only the request
whose input fails gets the error. A request whose caller went away is dropped before its batch
runs, or its answer discarded; it never holds others up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .backend import Backend
from .metrics import Metrics

ALONE = 0.2  # EWMA weight of the last batch's request count, which says whether to wait
INLINE_SECONDS = 0.1  # a call expected to take less runs in the event loop (module docstring)


@dataclass
class Pending:
    """One request waiting in a queue."""

    inputs: list[str]
    options: dict[str, Any]
    key: str | None  # requests with the same key may join; None: runs alone
    options_key: str  # the options as JSON, whose calls are timed together (CallTimes)
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
        self.times = CallTimes()
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
        options_key = json.dumps(options, sort_keys=True)
        key = options_key if joinable else None
        future: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self.pending.append(Pending(inputs, options, key, options_key, future))
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
            answers = await self._predict(inputs, live[0].options, live[0].options_key)
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
            _settle(item, await self._predict(item.inputs, item.options, item.options_key))
        except Exception as e:
            _settle(item, error=e)

    async def _predict(
        self, inputs: list[str], options: dict[str, Any], key: str
    ) -> list[dict[str, Any]]:
        """The backend's answers: in the event loop when expected to be quick, else in the
        inference thread (module docstring)."""
        size = sum(map(len, inputs)) + len(inputs)
        if self.times.expected(key, size) < INLINE_SECONDS:
            return self._timed(inputs, options, key, size)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._timed, inputs, options, key, size)

    def _timed(
        self, inputs: list[str], options: dict[str, Any], key: str, size: int
    ) -> list[dict[str, Any]]:
        start = time.perf_counter()
        answers = self.backend.predict(inputs, options)
        self.times.add(key, (time.perf_counter() - start) / size)
        return answers


class CallTimes:
    """Seconds per input character of a model's calls, by their options as JSON: up at once
    after a slower call, down a fifth of the way after a faster one, so that one slow call
    sends the next ones to the inference thread until calls are quick again."""

    KEYS = 256  # distinct options remembered (forgotten all at once beyond: a bound)

    def __init__(self) -> None:
        self.rates: dict[str, float] = {}

    def expected(self, key: str, size: int) -> float:
        """Seconds a call of `size` characters is expected to take; infinite if never timed."""
        rate = self.rates.get(key)
        return math.inf if rate is None else rate * size

    def add(self, key: str, rate: float) -> None:
        old = self.rates.get(key)
        if old is None and len(self.rates) >= self.KEYS:
            self.rates.clear()
        self.rates[key] = rate if old is None or rate > old else old + 0.2 * (rate - old)


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
