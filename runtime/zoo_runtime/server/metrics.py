"""Prometheus metrics of the server (`GET /metrics`).

One process: each app has its own registry, so that several apps in one process (tests) do
not collide. With `--workers N` a scrape lands on any one worker, so the workers use
prometheus_client's multiprocess mode: the parent names a directory in
PROMETHEUS_MULTIPROC_DIR (workers.py), every worker writes its figures there, and each scrape
sums them all: counts and histograms of every worker that has served (a dead one's included,
so that totals never go back), the queue gauge of the live ones.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The counters, histograms and gauges the server keeps; `text()` is the scrape."""

    def __init__(self) -> None:
        # Set by the parent of several workers; prometheus_client read it on import.
        self.shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "zoo_requests", "Predict requests answered, by model and HTTP status.",
            ["model", "status"], registry=r,
        )  # fmt: skip
        self.errors = Counter(
            "zoo_errors", "Predict requests that failed, by model and kind of error.",
            ["model", "kind"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "zoo_request_seconds", "Time from a predict request's arrival to its answer.",
            ["model"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_inputs = Histogram(
            "zoo_batch_inputs", "Inputs in one predict call of the model (a batch).",
            ["model"], buckets=BATCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_requests = Histogram(
            "zoo_batch_requests", "Requests joined in one predict call of the model.",
            ["model"], buckets=BATCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.queued = Gauge(
            "zoo_queue_inputs", "Inputs waiting for the model.", ["model"], registry=r,
            multiprocess_mode="livesum",
        )  # fmt: skip

    def text(self) -> bytes:
        """The scrape: this process's figures, or every worker's summed."""
        if self.shared is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.shared)
        return generate_latest(registry)
