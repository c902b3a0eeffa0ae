"""Prometheus metrics of one service, in its own registry (two apps in one process never share counters)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@dataclass
class Metrics:
    """Requests (by route template and status), their latency, the report queue, batches and reports; the explanation
    lane's own queue, refusals and times; whether the service is draining."""

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
        self.explain_queue = Gauge("brain3d_explain_queue_length", "Explanation requests admitted and not yet "
                                                                   "answered.", registry=r)
        self.explain_capacity = Gauge("brain3d_explain_queue_capacity", "Explanation requests admitted at most at "
                                                                        "once.", registry=r)
        self.explain_rejected = Counter("brain3d_explain_rejected", "Explanation requests refused with 503 because "
                                                                    "their queue was full.", registry=r)
        self.explanations = Counter("brain3d_explanations", "Explanations computed.", ("outcome",), registry=r)
        self.explain_seconds = Histogram("brain3d_explain_seconds", "Time the model spent on one explanation.",
                                         buckets=LATENCY_BUCKETS + (600, 1800), registry=r)
        self.draining = Gauge("brain3d_draining", "1 while the service finishes admitted requests before it stops.",
                              registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
