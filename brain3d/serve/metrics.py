"""Prometheus metrics of one service, in its own registry (two apps in one process never share counters)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@dataclass
class Metrics:
    """Requests (by route template and status), their latency, the queue, batches and reports."""

    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter("brain3d_requests", "HTTP requests answered.", ("method", "route", "status"),
                                registry=r)
        self.latency = Histogram("brain3d_request_seconds", "Time to answer an HTTP request.", ("route",),
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.queue = Gauge("brain3d_queue_length", "Report requests admitted and not yet answered.", registry=r)
        self.capacity = Gauge("brain3d_queue_capacity", "Report requests admitted at most at once.", registry=r)
        self.rejected = Counter("brain3d_rejected", "Report requests refused with 503 because the queue was full.",
                                registry=r)
        self.reports = Counter("brain3d_reports", "Reports generated.", ("outcome",), registry=r)
        self.batch_size = Histogram("brain3d_batch_size", "Scans per model batch.",
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)
        self.generation = Histogram("brain3d_batch_seconds", "Time the model spent on one batch.",
                                    buckets=LATENCY_BUCKETS, registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
