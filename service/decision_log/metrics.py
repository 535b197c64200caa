"""The decision log's metrics, registered in the app's registry beside the others."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class DecisionLogMetrics:
    """Records written, dropped (the request went on regardless) and feedback by route."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.written = Counter(
            "router_decision_log_written",
            "Decisions written to the decision log",
            registry=registry,
        )
        self.dropped = Counter(
            "router_decision_log_dropped",
            "Decisions selected for the log but not written: the writer's queue was full, or the "
            "database failed (the requests were answered regardless)",
            ["why"],
            registry=registry,
        )
        self.queued = Gauge(
            "router_decision_log_queue",
            "Decisions waiting for the log's writer",
            registry=registry,
            multiprocess_mode="livesum",  # with several workers: all of their queues
        )
        self.feedback = Counter(
            "router_feedback",
            "Feedback on decisions, by the route decided, the verdict and the route it should have "
            "gone to (empty when correct or unknown)",
            ["route", "verdict", "expected"],
            registry=registry,
        )
        for why in ("queue_full", "database_error"):
            self.dropped.labels(why)
