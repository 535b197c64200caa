"""POST /v1/answer over real HTTP: routing, the agent's prompt and history, streaming, limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devkit.fake_llm import DropMidStream, FakeLLM, Reply
from devkit.serving import SHIPPED_ROUTES
from router_core import Embedder, RouteTable, load_routes
from router_core.agents import LLMAgent
from tests.llm_fixtures import (
    USAGE_FAKE,
    copy_shipped,
    fast_llm,
    point_agents_at,
    router_service,
    sse_events,
)

OFF_TOPIC = "What's a good recipe for banana bread?"


@pytest.fixture(scope="module")
def shipped() -> RouteTable:
    """The shipped route table, for prompts, examples and the default reply."""
    return load_routes(SHIPPED_ROUTES)


@pytest.fixture(scope="module")
def answer_client(
    tmp_path_factory: pytest.TempPathFactory,
    embedder: Embedder,
    fake_llm_server: FakeLLM,
    llm_env: pytest.MonkeyPatch,
) -> Iterator[httpx.Client]:
    """A service over the shipped routes, their LLM agents pointed at the fake LLM."""
    root = tmp_path_factory.mktemp("answer")
    routes = copy_shipped(root / "routes")
    point_agents_at(routes, fake_llm_server.url)
    with (
        router_service(routes, root / "data", embedder, fast_llm()) as url,
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def offline_client(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, llm_env: pytest.MonkeyPatch
) -> Iterator[httpx.Client]:
    """A service over the unmodified shipped routes with no LLM endpoint configured."""
    root = tmp_path_factory.mktemp("offline")
    with (
        router_service(SHIPPED_ROUTES, root / "data", embedder, fast_llm()) as url,
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        yield c


def example_of(table: RouteTable, route: str) -> str:
    """A query certain to be routed to `route`: its first example."""
    found = table.get(route)
    assert found is not None
    return found.examples[0]


def system_prompt(table: RouteTable, route: str) -> str:
    agent = table.agent_for(route)
    assert isinstance(agent, LLMAgent)
    return agent.system_prompt


def test_query_is_answered_by_route_agent_with_its_system_prompt(
    answer_client: httpx.Client, fake_llm: FakeLLM, shipped: RouteTable
) -> None:
    """A coding query reaches the LLM as [coding system prompt, query]; its answer comes back."""
    query = example_of(shipped, "coding")
    r = answer_client.post("/v1/answer", json={"query": query})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["route"] == "coding"
    assert body["agent"] == body["answered_by"] == "coding-agent"
    assert body["model"] == "gpt-4o-mini"
    assert body["answer"] == f"[gpt-4o-mini] {query}"
    assert body["usage"] == USAGE_FAKE
    assert body["fallback_reason"] is None
    assert body["fallback"] is False and body["index_version"]
    [call] = fake_llm.calls()
    assert call.model == "gpt-4o-mini"
    assert call.messages == [
        {"role": "system", "content": system_prompt(shipped, "coding")},
        {"role": "user", "content": query},
    ]
    assert call.body["temperature"] == 0.2 and call.body["max_tokens"] == 800
    assert r.headers["x-router-route"] == "coding"
    assert r.headers["x-router-model"] == "gpt-4o-mini"


def test_messages_route_on_latest_user_message_and_pass_history(
    answer_client: httpx.Client, fake_llm: FakeLLM, shipped: RouteTable
) -> None:
    """A chat is routed on its last user message; the whole history follows the agent's prompt."""
    history = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": example_of(shipped, "maths")},
        {"role": "assistant", "content": "It is 42."},
        {"role": "user", "content": example_of(shipped, "pricing_billing")},
    ]
    r = answer_client.post("/v1/answer", json={"messages": history})
    assert r.status_code == 200, r.text
    assert r.json()["route"] == "pricing_billing"
    [call] = fake_llm.calls()
    assert call.messages == [
        {"role": "system", "content": system_prompt(shipped, "pricing_billing")},
        *history,
    ]


def test_off_topic_query_gets_the_canned_default_reply(
    answer_client: httpx.Client, fake_llm: FakeLLM, shipped: RouteTable
) -> None:
    """Below threshold, the canned default agent answers without any LLM call."""
    r = answer_client.post("/v1/answer", json={"query": OFF_TOPIC})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["route"] == "default" and body["fallback"] is True
    assert body["answered_by"] == "default-agent"
    assert body["model"] == "canned"
    assert body["answer"] == shipped.default_agent.reply  # type: ignore[union-attr]
    assert body["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert fake_llm.calls() == []


def test_streamed_answer_sends_route_first_then_deltas_then_done(
    answer_client: httpx.Client, fake_llm: FakeLLM, shipped: RouteTable
) -> None:
    """`stream: true` gives route, agent, deltas joining to the answer, and done with usage."""
    query = example_of(shipped, "team_performance")
    fake_llm.script("gpt-4o-mini", Reply(chunks=5))
    r = answer_client.post("/v1/answer", json={"query": query, "stream": True})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r)
    names = [name for name, _ in events]
    assert names[0] == "route" and names[1] == "agent" and names[-1] == "done"
    assert set(names[2:-1]) == {"delta"} and len(names[2:-1]) == 5
    assert events[0][1]["route"] == "team_performance"
    assert events[1][1]["answered_by"] == "team-performance-agent"
    assert "".join(data["content"] for name, data in events if name == "delta") == (f"[gpt-4o-mini] {query}")
    assert events[-1][1]["usage"] == USAGE_FAKE
    [call] = fake_llm.calls()
    assert call.body["stream"] is True
    assert call.messages[0]["content"] == system_prompt(shipped, "team_performance")


def test_streamed_off_topic_answer_is_the_canned_reply(
    answer_client: httpx.Client, fake_llm: FakeLLM, shipped: RouteTable
) -> None:
    """A streamed off-topic query yields the default route and the canned reply."""
    r = answer_client.post("/v1/answer", json={"query": OFF_TOPIC, "stream": True})
    events = sse_events(r)
    assert [name for name, _ in events] == ["route", "agent", "delta", "done"]
    assert events[0][1]["route"] == "default"
    assert events[1][1]["kind"] == "canned"
    assert events[2][1]["content"] == shipped.default_agent.reply  # type: ignore[union-attr]
    assert fake_llm.calls() == []


def test_stream_broken_mid_answer_ends_with_an_error_event(
    answer_client: httpx.Client, fake_llm: FakeLLM, shipped: RouteTable
) -> None:
    """When the LLM drops the connection mid-stream, the last event is an error problem."""
    fake_llm.script("gpt-4o-mini", DropMidStream(after=2))
    r = answer_client.post("/v1/answer", json={"query": example_of(shipped, "maths"), "stream": True})
    events = sse_events(r)
    names = [name for name, _ in events]
    assert names[:2] == ["route", "agent"] and "delta" in names
    assert names[-1] == "error"
    problem = events[-1][1]
    assert problem["status"] == 502 and problem["route"] == "maths"
    assert "mid-stream" in problem["detail"]


def test_explain_adds_neighbours(answer_client: httpx.Client, shipped: RouteTable) -> None:
    """`explain: true` includes the neighbours behind the decision, as /v1/classify does."""
    r = answer_client.post("/v1/answer", json={"query": example_of(shipped, "maths"), "explain": True})
    assert r.status_code == 200
    assert r.json()["neighbours"][0]["route"] == "maths"


def test_offline_service_says_the_routes_agent_has_no_endpoint(
    offline_client: httpx.Client, shipped: RouteTable
) -> None:
    """With no endpoint configured, the route is still decided and the answer says plainly that
    the chosen route's agent has no endpoint configured, naming the route (the default agent's
    "can't help with that" read as if the router had not understood the question)."""
    r = offline_client.post("/v1/answer", json={"query": example_of(shipped, "maths")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["route"] == "maths" and body["agent"] == "maths-agent"
    assert body["answered_by"] == "default-agent" and body["model"] == "canned"
    assert body["answer"] != shipped.default_agent.reply  # type: ignore[union-attr]
    assert "routed to 'maths'" in body["answer"] and "maths-agent" in body["answer"]
    assert "no LLM endpoint configured" in body["answer"]
    assert "no LLM endpoint configured" in body["fallback_reason"]
    assert body["attempts"][0]["kind"] == "unavailable"
    off_topic = offline_client.post("/v1/answer", json={"query": OFF_TOPIC}).json()
    assert off_topic["answer"] == shipped.default_agent.reply  # type: ignore[union-attr]


def test_offline_stream_says_the_routes_agent_has_no_endpoint(
    offline_client: httpx.Client, shipped: RouteTable
) -> None:
    """Offline streaming also answers: route, then the same plain statement of the route chosen
    and its agent without an endpoint."""
    r = offline_client.post("/v1/answer", json={"query": example_of(shipped, "maths"), "stream": True})
    events = sse_events(r)
    assert [name for name, _ in events] == ["route", "agent", "delta", "done"]
    assert events[0][1]["route"] == "maths"
    assert events[1][1]["answered_by"] == "default-agent"
    assert "no LLM endpoint configured" in events[1][1]["fallback_reason"]
    assert "routed to 'maths'" in events[2][1]["content"]


LONG = "x" * 2001


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({}, "exactly one of query or messages"),
        ({"query": "hi", "messages": [{"role": "user", "content": "hi"}]}, "exactly one"),
        ({"query": "   "}, "empty"),
        ({"query": LONG}, "limit is 2000"),
        ({"messages": []}, "messages is empty"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id is missing"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "no user message"),
        ({"messages": [{"role": "user", "content": " "}]}, "messages[0].content is empty"),
        ({"messages": [{"role": "user"}]}, "messages[0].content is missing"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "image, audio and file parts are not read",
        ),
        ({"query": 5}, "query"),
        ({"qeury": "hello"}, "qeury"),
    ],
)
def test_bad_answer_requests_are_400_problems(answer_client: httpx.Client, body: dict[str, object], names: str) -> None:
    """Malformed bodies get a 400 problem naming what is wrong, never a 500."""
    r = answer_client.post("/v1/answer", json=body)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert names in r.text


def test_too_many_messages_is_a_400_problem(answer_client: httpx.Client) -> None:
    """More messages than limits.max_messages is refused, naming the limit."""
    messages = [{"role": "user", "content": "hi"}] * 101
    r = answer_client.post("/v1/answer", json={"messages": messages})
    assert r.status_code == 400
    assert r.json()["limit"] == 100


def test_text_parts_are_joined(answer_client: httpx.Client, fake_llm: FakeLLM, shipped: RouteTable) -> None:
    """List-of-parts content (OpenAI style) is routed on its joined text and reaches the agent as sent."""
    query = example_of(shipped, "maths")
    content = [{"type": "text", "text": query}]
    r = answer_client.post("/v1/answer", json={"messages": [{"role": "user", "content": content}]})
    assert r.status_code == 200, r.text
    assert r.json()["route"] == "maths"
    assert fake_llm.calls()[0].messages[-1] == {"role": "user", "content": content}


def test_route_files_unchanged(shipped: RouteTable) -> None:
    """The shipped routes still ship LLM agents on gpt-4o-mini behind a canned default."""
    assert all(isinstance(r.agent, LLMAgent) for r in shipped.routes)
    assert {r.agent.model for r in shipped.routes} == {"gpt-4o-mini"}  # type: ignore[union-attr]
    assert shipped.default_agent.kind == "canned"
    assert Path(SHIPPED_ROUTES / "_router.yaml").is_file()
