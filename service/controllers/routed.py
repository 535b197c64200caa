"""What every routing endpoint does with a routed request: the access-log fields and the wire form."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from router_core.pipeline import RouteRequest
from service.agents import Conversation, build_conversation
from service.decision_log import RequestRecorder
from service.errors import InvalidQuery
from service.metrics import Metrics
from service.observability import annotate
from service.routing.stage import LLMVerdict, Routed, RoutingStage
from service.schemas import ClassifyResponse, LLMOut, MessageIn, classify_response, message_payloads
from service.settings import LimitSettings


@dataclass(frozen=True)
class RouteCall:
    """What a routing endpoint works with, injected as one dependency: the routing stage of the
    request's route set, the limits, whether queries are logged, the request's decision-log
    recorder and the metrics. One dependency, not five: Litestar resolves several independent
    dependencies of a handler in a task group, a task each, on every request (issue 23: a
    fifth of the event loop's time per classify)."""

    routing: RoutingStage
    limits: LimitSettings
    log_queries: bool
    recorder: RequestRecorder
    metrics: Metrics


def conversation_of(query: str | None, messages: Sequence[MessageIn] | None, limits: LimitSettings) -> Conversation:
    """The conversation a request holds: exactly one of `query` or `messages`."""
    if (query is None) == (messages is None):
        raise InvalidQuery("send exactly one of query or messages", field="query")
    if query is not None:
        return Conversation.single(query, limits)
    assert messages is not None
    return chat_of(messages, limits)


def chat_of(messages: Sequence[MessageIn], limits: LimitSettings) -> Conversation:
    """The conversation of a `messages` list."""
    return build_conversation(message_payloads(messages), limits)


def note_skipped(conversations: Sequence[Conversation], metrics: Metrics) -> None:
    """Put the parts the router did not read (images, audio, files), by type, on the request's
    access-log line and in `router_skipped_parts_total`."""
    total: Counter[str] = Counter()
    for c in conversations:
        total.update(c.skipped_parts)
    if total:
        annotate(skipped_parts=dict(total))
        metrics.observe_skipped(total)


def route_request(conversation: Conversation) -> RouteRequest:
    """What the routing stage reads of a conversation."""
    return RouteRequest(conversation.turns)


def llm_out(verdict: LLMVerdict | None) -> LLMOut | None:
    """Wire form of what the decision model did."""
    if verdict is None:
        return None
    return LLMOut(verdict.model, verdict.outcome, verdict.latency_ms, verdict.cached, verdict.detail or None)


def record_decisions(recorder: RequestRecorder, items: Sequence[Routed], requests: Sequence[RouteRequest]) -> None:
    """Hand the decisions to the decision log: the one place every routed request (classify,
    batch, answer, chat completions) passes. Never waits for the database, never raises."""
    recorder.record(items, requests)


def annotate_decision(item: Routed, request: RouteRequest, *, log_query: bool, recorder: RequestRecorder) -> None:
    """Put the decision on the request's access-log line (the query only when enabled) and in
    the decision log."""
    record_decisions(recorder, [item], [request])
    d = item.decision
    fields: dict[str, object] = {
        "route": d.route,
        "fallback": d.fallback,
        "reason": d.reason,
        "decided_by": d.decided_by,
        "score": round(d.score, 4),
        "index_version": item.index.version,
        "embed_ms": round(item.embed_ms, 2),
        "search_ms": round(item.search_ms, 2),
    }
    if d.turns:
        fields["turns"] = [t.index for t in d.turns]
    if item.llm is not None:
        fields["llm_outcome"] = item.llm.outcome
        fields["llm_ms"] = item.llm.latency_ms
        fields["llm_cached"] = item.llm.cached
    if log_query:
        fields["query"] = request.text
    annotate(**fields)


def to_response(item: Routed, *, explain: bool, skipped_parts: Mapping[str, int] | None = None) -> ClassifyResponse:
    """Wire form, naming the agent from the same version that decided."""
    agent = item.index.table.agent_for(item.decision.route)
    return classify_response(
        item.decision,
        agent.name,
        item.index.version,
        explain=explain,
        llm=llm_out(item.llm),
        skipped_parts=skipped_parts,
        route_set=item.route_set,
    )
