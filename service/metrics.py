"""Prometheus metrics, in a registry owned by one app (no process-global state)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from router_core import Decision
from router_core.manifest import IndexManifest
from router_llm.decider import Asked

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_AGENT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Every metric the service exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "router_http_requests",
            "HTTP requests by endpoint and status",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "router_http_request_duration_seconds",
            "HTTP request latency by endpoint",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "router_decisions",
            "Routing decisions by route and fallback",
            ["route", "fallback", "reason"],
            registry=r,
        )
        self.stage_seconds = Histogram(
            "router_classify_stage_seconds",
            "Latency of the classification stages, embed and search, per micro-batch",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.score = Histogram(
            "router_similarity_score",
            "Best neighbour similarity per query",
            buckets=tuple(i / 20 for i in range(-4, 21)),
            registry=r,
        )
        self.index_info = Gauge(
            "router_index_version_info",
            "The index version served (value 1)",
            ["version", "model", "created_at"],
            registry=r,
        )
        self.index_points = Gauge(
            "router_index_examples",
            "Example utterances in the served index",
            registry=r,
        )
        self.reindex = Counter(
            "router_reindex",
            "Re-indexes triggered through the admin endpoint by outcome",
            ["outcome"],
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
            ["source"],
            registry=r,
        )
        self.searched = Counter(
            "router_searched_texts",
            "Texts whose nearest examples the routing stage needed, by whether they were searched "
            "or found in the cache (a chat's history, per index version)",
            ["source"],
            registry=r,
        )
        self.llm_decisions = Counter(
            "router_llm_decisions",
            "Questions to the decision model (mode llm: every request; hybrid: escalations) by outcome",
            ["mode", "outcome", "cached"],
            registry=r,
        )
        self.llm_seconds = Histogram(
            "router_llm_decision_seconds",
            "Latency of the decision model (calls, not cache hits)",
            ["mode"],
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
            ["agree"],
            registry=r,
        )

    def observe_skipped(self, parts: Mapping[str, int]) -> None:
        """Count the content parts of chat messages the router did not read, by type."""
        for kind, n in parts.items():
            self.skipped_parts.labels(kind).inc(n)

    def observe_searched(self, texts: int, searched: int) -> None:
        """Count the texts a micro-batch needed neighbours for and how many it searched."""
        self.searched.labels("searched").inc(searched)
        self.searched.labels("cache").inc(texts - searched)

    def observe_embedded(self, texts: int, embedded: int) -> None:
        """Count the texts a micro-batch needed and how many it had to embed."""
        self.embedded.labels("embedded").inc(embedded)
        self.embedded.labels("cache").inc(texts - embedded)

    def observe_llm(self, mode: str, asked: Asked, *, cached: bool, agreed: bool | None) -> None:
        """Record one question to the decision model (or its cached answer); `agreed`: whether
        a hybrid's recognised answer named the vote's route (`pipeline.agreement`)."""
        self.llm_decisions.labels(mode, asked.outcome, str(cached).lower()).inc()
        if not cached and asked.outcome != "unavailable":
            self.llm_seconds.labels(mode).observe(asked.seconds)
        if agreed is not None:
            self.llm_agreement.labels(str(agreed).lower()).inc()

    def observe_decisions(self, decisions: Iterable[Decision]) -> None:
        """Count decisions and record their best similarity."""
        for d in decisions:
            self.decisions.labels(d.route, str(d.fallback).lower(), d.reason).inc()
            self.score.observe(d.score)

    def observe_stages(self, embed_s: float, search_s: float) -> None:
        """Record one forward pass and its search."""
        self.stage_seconds.labels("embed").observe(embed_s)
        self.stage_seconds.labels("search").observe(search_s)

    def set_index(self, manifest: IndexManifest) -> None:
        """Export the served version as the only labelled series."""
        self.index_info.clear()
        self.index_info.labels(manifest.version, manifest.model_id, manifest.created_at).set(1)
        self.index_points.set(manifest.points)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
