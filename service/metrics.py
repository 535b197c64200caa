"""Prometheus metrics, in a registry owned by one app (no process-global state).

With several worker processes the supervisor gives them one directory for prometheus_client's
multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, set in the workers' environment before they
start): every worker writes its values there and `/metrics`, whichever worker answers, renders
all of them summed (counters, histograms), the gauges as the largest value of a live worker.

The routing metrics carry the route set (`route_set`): each set's services record through a
view of the one registry (`Metrics.for_set`), so the stage and the index admin never name
their set themselves.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from router_core import DEFAULT_SET, Decision
from router_core.manifest import IndexManifest
from router_llm.decider import Asked

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client reads it when it is imported
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_AGENT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Every metric the service exports."""

    def __init__(self) -> None:
        self.route_set = DEFAULT_SET  # the set this view records for (`for_set`)
        self._index_labels: dict[str, tuple[str, str, str]] = {}  # per set: the served version's labels
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "router_http_requests",
            "HTTP requests by endpoint, status and route set (empty: the request named none)",
            ["endpoint", "method", "status", "route_set"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "router_http_request_duration_seconds",
            "HTTP request latency by endpoint and route set",
            ["endpoint", "route_set"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "router_decisions",
            "Routing decisions by route set, route and fallback",
            ["route_set", "route", "fallback", "reason"],
            registry=r,
        )
        self.stage_seconds = Histogram(
            "router_classify_stage_seconds",
            "Latency of the classification stages, embed and search, per micro-batch",
            ["route_set", "stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.score = Histogram(
            "router_similarity_score",
            "Best neighbour similarity per query",
            ["route_set"],
            buckets=tuple(i / 20 for i in range(-4, 21)),
            registry=r,
        )
        self.index_info = Gauge(
            "router_index_version_info",
            "The index version served per route set (value 1)",
            ["route_set", "version", "model", "created_at"],
            registry=r,
            multiprocess_mode="livemax",  # 1 while a live worker serves the version
        )
        self.index_points = Gauge(
            "router_index_examples",
            "Example utterances in the served index",
            ["route_set"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.reindex = Counter(
            "router_reindex",
            "Re-indexes triggered through the admin endpoint by route set and outcome",
            ["route_set", "outcome"],
            registry=r,
        )
        self.agent_seconds = Histogram(
            "router_agent_call_duration_seconds",
            "Agent (LLM) call latency by model and outcome",
            ["model", "outcome"],
            buckets=_AGENT_BUCKETS,
            registry=r,
        )
        self.agent_errors = Counter(
            "router_agent_errors",
            "Agent (LLM) call errors by model and kind",
            ["model", "kind"],
            registry=r,
        )

        self.embedded = Counter(
            "router_routed_texts",
            "Texts the routing stage needed, by whether they were embedded or found in the cache",
            ["route_set", "source"],
            registry=r,
        )
        self.searched = Counter(
            "router_searched_texts",
            "Texts whose nearest examples the routing stage needed, by whether they were searched "
            "or found in the cache (a chat's history, per index version)",
            ["route_set", "source"],
            registry=r,
        )
        self.llm_decisions = Counter(
            "router_llm_decisions",
            "Questions to the decision model (mode llm: every request; hybrid: escalations) by outcome",
            ["route_set", "mode", "outcome", "cached"],
            registry=r,
        )
        self.llm_seconds = Histogram(
            "router_llm_decision_seconds",
            "Latency of the decision model (calls, not cache hits)",
            ["route_set", "mode"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.skipped_parts = Counter(
            "router_skipped_parts",
            "Content parts of chat messages the router did not read (image_url, input_audio, file, refusal, "
            "other), by type; they are passed to the agent",
            ["type"],
            registry=r,
        )
        self.llm_agreement = Counter(
            "router_llm_agreement",
            "Hybrid escalations the model answered: whether it agreed with the vote's route",
            ["route_set", "agree"],
            registry=r,
        )

    def observe_skipped(self, parts: Mapping[str, int]) -> None:
        """Count the content parts of chat messages the router did not read, by type."""
        for kind, n in parts.items():
            self.skipped_parts.labels(kind).inc(n)

    def for_set(self, name: str) -> Metrics:
        """A view recording into the same metrics for route set `name`."""
        view = copy.copy(self)
        view.route_set = name
        return view

    def observe_searched(self, texts: int, searched: int) -> None:
        """Count the texts a micro-batch needed neighbours for and how many it searched."""
        self.searched.labels(self.route_set, "searched").inc(searched)
        self.searched.labels(self.route_set, "cache").inc(texts - searched)

    def observe_embedded(self, texts: int, embedded: int) -> None:
        """Count the texts a micro-batch needed and how many it had to embed."""
        self.embedded.labels(self.route_set, "embedded").inc(embedded)
        self.embedded.labels(self.route_set, "cache").inc(texts - embedded)

    def observe_llm(self, mode: str, asked: Asked, *, cached: bool, agreed: bool | None) -> None:
        """Record one question to the decision model (or its cached answer); `agreed`: whether
        a hybrid's recognised answer named the vote's route (`pipeline.agreement`)."""
        self.llm_decisions.labels(self.route_set, mode, asked.outcome, str(cached).lower()).inc()
        if not cached and asked.outcome != "unavailable":
            self.llm_seconds.labels(self.route_set, mode).observe(asked.seconds)
        if agreed is not None:
            self.llm_agreement.labels(self.route_set, str(agreed).lower()).inc()

    def observe_decisions(self, decisions: Iterable[Decision]) -> None:
        """Count decisions and record their best similarity."""
        for d in decisions:
            self.decisions.labels(self.route_set, d.route, str(d.fallback).lower(), d.reason).inc()
            self.score.labels(self.route_set).observe(d.score)

    def observe_stages(self, embed_s: float, search_s: float) -> None:
        """Record one forward pass and its search."""
        self.stage_seconds.labels(self.route_set, "embed").observe(embed_s)
        self.stage_seconds.labels(self.route_set, "search").observe(search_s)

    def observe_reindex(self, outcome: str) -> None:
        """Count an admin re-index of this set by outcome."""
        self.reindex.labels(self.route_set, outcome).inc()

    def set_index(self, manifest: IndexManifest) -> None:
        """Export the version this set serves as its only labelled series."""
        labels = (manifest.version, manifest.model_id, manifest.created_at)
        previous = self._index_labels.get(self.route_set)
        if previous is not None and previous != labels:
            self.index_info.labels(self.route_set, *previous).set(0)  # what other workers read of it
            self.index_info.remove(self.route_set, *previous)
        self._index_labels[self.route_set] = labels
        self.index_info.labels(self.route_set, *labels).set(1)
        self.index_points.labels(self.route_set).set(manifest.points)

    def forget_set(self) -> None:
        """Remove this set's index series (it serves no version)."""
        previous = self._index_labels.pop(self.route_set, None)
        if previous is not None:
            self.index_info.labels(self.route_set, *previous).set(0)
            self.index_info.remove(self.route_set, *previous)

    def render(self) -> bytes:
        """The text exposition format: this process's metrics, or with several worker processes
        every worker's (prometheus_client's multiprocess mode)."""
        shared = os.environ.get(MULTIPROCESS_DIR)
        if not shared:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=shared)  # type: ignore[no-untyped-call]  # untyped in prometheus_client
        return generate_latest(registry)
