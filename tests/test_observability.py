"""Metrics, request ids and structured access logs."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from devkit.waiting import wait_for
from service.observability import JsonFormatter


def test_metrics_cover_requests_decisions_latency_and_index(client: httpx.Client) -> None:
    """/metrics exports request counts, decisions, stage latencies, scores and the index version."""
    client.post("/v1/classify", json={"query": "What is 15% of 200?"})
    client.post("/v1/classify", json={"query": "What's a good recipe for banana bread?"})
    client.post("/v1/classify", json={"query": " "})
    text = client.get("/metrics").text
    assert 'router_http_requests_total{endpoint="/v1/classify",method="POST",route_set="default",status="200"}' in text
    assert 'router_http_requests_total{endpoint="/v1/classify",method="POST",route_set="default",status="400"}' in text
    assert 'router_decisions_total{fallback="false",reason="vote",route="maths",route_set="default"}' in text
    assert (
        'router_decisions_total{fallback="true",reason="below_threshold",route="default",route_set="default"}' in text
    )
    for stage in ("embed", "search"):
        assert f'router_classify_stage_seconds_count{{route_set="default",stage="{stage}"}}' in text
    assert 'router_http_request_duration_seconds_count{endpoint="/v1/classify",route_set="default"}' in text
    assert "router_similarity_score_bucket" in text
    version = client.get("/v1/routes").json()["index_version"]
    assert f'version="{version}"' in text and "router_index_version_info" in text
    assert "router_agent_call_duration_seconds" in text  # declared; filled by agent calls


def test_request_id_is_returned_and_generated(client: httpx.Client) -> None:
    """A valid incoming X-Request-ID is echoed; otherwise one is generated."""
    given = client.post("/v1/classify", json={"query": "hi"}, headers={"X-Request-ID": "trace-42"})
    assert given.headers["x-request-id"] == "trace-42"
    made = client.post("/v1/classify", json={"query": "hi"})
    assert len(made.headers["x-request-id"]) == 32
    bogus = client.post("/v1/classify", json={"query": "hi"}, headers={"X-Request-ID": "a b;" + "x" * 200})
    assert len(bogus.headers["x-request-id"]) == 32


def access_lines(caplog: pytest.LogCaptureFixture, *request_ids: str) -> list[dict[str, Any]]:
    """The access log's lines once those of `request_ids` are written: a line is written when the
    response has gone out (so that a client that left is logged as such), just after the client
    has it."""

    def lines() -> list[dict[str, Any]]:
        return [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "router.access"]

    wait_for(lambda: set(request_ids) <= {line["request_id"] for line in lines()}, 10, "the access lines")
    return lines()


def test_access_log_has_route_and_timings_but_no_query(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    """Each request logs one JSON line with id, status, route and timings, without the query text."""
    secret_query = "How do I use async with Rust? my account is 12345678"
    with caplog.at_level(logging.INFO, logger="router.access"):
        client.post("/v1/classify", json={"query": secret_query}, headers={"X-Request-ID": "log-check-1"})
        lines = access_lines(caplog, "log-check-1")
    [line] = [entry for entry in lines if entry["request_id"] == "log-check-1"]
    assert line["status"] == 200 and line["route"] == "coding" and line["fallback"] is False
    assert line["index_version"].startswith("v")
    assert {"ms", "embed_ms", "search_ms"} <= set(line)
    assert "12345678" not in json.dumps(lines)


def test_answer_and_chat_access_lines_carry_the_decision(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """/v1/answer (plain and streamed) and /v1/chat/completions log the route, fallback and
    index version like /v1/classify, and a streamed answer names its index version up front."""
    query = "What's a good recipe for banana bread?"
    chat = {"model": "router", "messages": [{"role": "user", "content": query}]}
    with caplog.at_level(logging.INFO, logger="router.access"):
        assert client.post("/v1/answer", json={"query": query}, headers={"X-Request-ID": "ans-1"}).status_code == 200
        streamed = client.post("/v1/answer", json={"query": query, "stream": True}, headers={"X-Request-ID": "ans-2"})
        assert client.post("/v1/chat/completions", json=chat, headers={"X-Request-ID": "chat-1"}).status_code == 200
        lines = access_lines(caplog, "ans-1", "ans-2", "chat-1")
    assert streamed.headers["x-router-index-version"].startswith("v")
    by_id = {entry["request_id"]: entry for entry in lines}
    for rid in ("ans-1", "ans-2", "chat-1"):
        line = by_id[rid]
        assert line["route"] == "default" and line["fallback"] is True, line
        assert line["index_version"] == streamed.headers["x-router-index-version"]
        assert "banana" not in json.dumps(line)


def test_requests_no_route_matches_are_logged_counted_and_given_an_id(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """404 and 405 get a request id, an access line and a count under one bounded label."""
    with caplog.at_level(logging.INFO, logger="router.access"):
        missing = client.get("/no/such/page-12345", headers={"X-Request-ID": "lost-1"})
        wrong = client.get("/v1/classify", headers={"X-Request-ID": "lost-2"})
        lines = access_lines(caplog, "lost-1", "lost-2")
    assert (missing.status_code, wrong.status_code) == (404, 405)
    assert missing.headers["x-request-id"] == "lost-1" and wrong.headers["x-request-id"] == "lost-2"
    statuses = {entry["request_id"]: entry["status"] for entry in lines}
    assert statuses["lost-1"] == 404 and statuses["lost-2"] == 405
    text = client.get("/metrics").text
    assert 'router_http_requests_total{endpoint="<unmatched>",method="GET",route_set="",status="404"}' in text
    assert 'endpoint="<unmatched>",method="GET",route_set="",status="405"' in text
    assert "page-12345" not in text  # the raw path never becomes a label
