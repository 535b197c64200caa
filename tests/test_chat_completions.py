"""The OpenAI-compatible front door, driven by the official `openai` client over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from devkit.fake_llm import DropMidStream, Fail, FakeLLM, Reply
from devkit.serving import SHIPPED_ROUTES
from router_core import Embedder, load_routes
from tests.llm_fixtures import (
    fast_llm,
    router_service,
    shipped_router,
    sse_events,
)

SHIPPED = load_routes(SHIPPED_ROUTES)
DEFAULT_REPLY: str = SHIPPED.default_agent.reply  # type: ignore[union-attr]
OFF_TOPIC = "What's a good recipe for banana bread?"
# Each seed route with a query certain to reach it (its first example), plus one off-topic.
CASES = [(r.name, r.examples[0]) for r in SHIPPED.routes] + [("default", OFF_TOPIC)]
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def router_url(
    tmp_path_factory: pytest.TempPathFactory,
    embedder: Embedder,
    fake_llm_server: FakeLLM,
    llm_env: pytest.MonkeyPatch,
) -> Iterator[str]:
    """A service over the shipped routes, their LLM agents pointed at the fake LLM."""
    with shipped_router(tmp_path_factory.mktemp("chat"), embedder, fake_llm_server) as url:
        yield url


@pytest.fixture(scope="module")
def sdk(router_url: str) -> Iterator[openai.OpenAI]:
    """The official client pointed at the router, unchanged but for base_url."""
    with openai.OpenAI(base_url=f"{router_url}/v1", api_key="not-checked", max_retries=0) as c:
        yield c


@pytest.fixture(scope="module")
def offline_sdk(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, llm_env: pytest.MonkeyPatch
) -> Iterator[openai.OpenAI]:
    """The official client against a service with no LLM endpoint configured."""
    root = tmp_path_factory.mktemp("chat-offline")
    with (
        router_service(SHIPPED_ROUTES, root / "data", embedder, fast_llm()) as url,
        openai.OpenAI(base_url=f"{url}/v1", api_key="not-checked", max_retries=0) as c,
    ):
        yield c


def expected_answer(route: str, query: str) -> str:
    return DEFAULT_REPLY if route == "default" else f"[gpt-4o-mini] {query}"


def expected_model(route: str) -> str:
    return f"router/{route}/{'canned' if route == 'default' else 'gpt-4o-mini'}"


def test_models_lists_the_router(sdk: openai.OpenAI) -> None:
    """GET /v1/models lists exactly the router's model."""
    models = sdk.models.list()
    assert [m.id for m in models.data] == ["router"]
    assert models.data[0].owned_by == "semantic-router"


@pytest.mark.parametrize(("route", "query"), CASES, ids=[c[0] for c in CASES])
def test_completion_for_each_route(sdk: openai.OpenAI, fake_llm: FakeLLM, route: str, query: str) -> None:
    """A completion is answered by the route's agent and says so in its model and headers."""
    raw = sdk.chat.completions.with_raw_response.create(model="router", messages=[{"role": "user", "content": query}])
    completion = raw.parse()
    assert completion.choices[0].message.content == expected_answer(route, query)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == expected_model(route)
    assert raw.headers["x-router-route"] == route
    agent = SHIPPED.agent_for(route).name
    assert raw.headers["x-router-agent"] == agent
    assert raw.headers["x-router-model"] == completion.model.rsplit("/", 1)[1]
    extra = completion.model_extra or {}
    assert extra["router"]["route"] == route and extra["router"]["agent"] == agent
    if route == "default":
        assert fake_llm.calls() == []
        assert completion.usage is not None and completion.usage.total_tokens == 0
    else:
        assert [c.model for c in fake_llm.calls()] == ["gpt-4o-mini"]
        assert completion.usage is not None and completion.usage.total_tokens == 18


@pytest.mark.parametrize(("route", "query"), CASES, ids=[c[0] for c in CASES])
def test_streamed_completion_for_each_route(sdk: openai.OpenAI, fake_llm: FakeLLM, route: str, query: str) -> None:
    """A streamed completion yields OpenAI chunks that join to the agent's answer, then usage."""
    fake_llm.always("gpt-4o-mini", Reply(chunks=4))
    with sdk.chat.completions.with_streaming_response.create(
        model="router",
        messages=[{"role": "user", "content": query}],
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        assert response.headers["x-router-route"] == route
        chunks = list(response.parse())
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == expected_answer(route, query)
    assert {c.model for c in chunks} == {expected_model(route)}
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == (0 if route == "default" else 18)
    if route != "default":
        [call] = fake_llm.calls()
        assert call.body["stream"] is True
        assert call.body["stream_options"] == {"include_usage": True}


def test_stream_is_sse_ending_with_done(router_url: str, fake_llm: FakeLLM) -> None:
    """On the wire, the stream is `data:` events in chunk format ending with `data: [DONE]`."""
    body = {
        "model": "router",
        "stream": True,
        "messages": [{"role": "user", "content": SHIPPED.routes[0].examples[0]}],
    }
    r = httpx.post(f"{router_url}/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.text.endswith("data: [DONE]\n\n")
    events = sse_events(r)
    assert events[-1] == ("message", "[DONE]")
    assert all(data["object"] == "chat.completion.chunk" for _, data in events[:-1])


def test_history_and_system_prompt_reach_the_llm(sdk: openai.OpenAI, fake_llm: FakeLLM) -> None:
    """The chosen agent's system prompt comes first, then the caller's whole history."""
    coding = SHIPPED.get("coding")
    maths = SHIPPED.get("maths")
    assert coding is not None and maths is not None
    history = [
        {"role": "user", "content": coding.examples[1]},
        {"role": "assistant", "content": "Use tokio::spawn."},
        {"role": "user", "content": maths.examples[0]},
    ]
    messages: Any = history
    completion = sdk.chat.completions.create(model="router", messages=messages)
    assert completion.model == "router/maths/gpt-4o-mini"
    [call] = fake_llm.calls()
    assert call.messages == [
        {"role": "system", "content": maths.agent.system_prompt},  # type: ignore[union-attr]
        *history,
    ]


def test_a_long_user_message_is_routed_on_its_start_and_answered_whole(sdk: openai.OpenAI, fake_llm: FakeLLM) -> None:
    """A message longer than the query limit (a pasted file) is routed on its first
    characters and reaches the agent whole, instead of being refused."""
    code = 'fn main() {\n    let v: Vec<u32> = (0..10).collect();\n    println!("{:?}", v);\n}\n'
    content = "How do I use async with Rust? Here is my program:\n" + code * 60
    assert len(content) > 2000
    messages: Any = [{"role": "user", "content": content}]
    completion = sdk.chat.completions.create(model="router", messages=messages)
    assert completion.model == "router/coding/gpt-4o-mini"
    [call] = fake_llm.calls()
    assert call.messages[-1] == {"role": "user", "content": content}


def test_max_tokens_only_lowers_the_agent_limit(sdk: openai.OpenAI, fake_llm: FakeLLM) -> None:
    """A caller's max_tokens caps the agent's own limit but never raises it."""
    messages: Any = [{"role": "user", "content": SHIPPED.routes[0].examples[0]}]
    sdk.chat.completions.create(model="router", messages=messages, max_tokens=50)
    sdk.chat.completions.create(model="router", messages=messages, max_tokens=5000)
    assert [c.body["max_tokens"] for c in fake_llm.calls()] == [50, 800]


def test_unknown_model_is_404_naming_the_router(sdk: openai.OpenAI) -> None:
    """Asking for another model fails with 404, and the problem names the available model."""
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["available"] == ["router"] and "gpt-4o" in body["detail"]


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"model": "router"}, "messages"),
        ({"model": "router", "messages": "hello"}, "messages"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": "router", "messages": [{"role": "wizard", "content": "hi"}]}, "role"),
        ({"model": "router", "messages": [{"role": "user", "content": ""}]}, "empty"),
        ({"model": "router", "messages": [{"role": "user", "content": "x" * 100_001}]}, "100000"),
        ({"model": "router", "messages": HI, "n": 2}, "n must be 1"),
        ({"model": "router", "messages": HI, "tools": [{}]}, "tools[0].type is missing"),
        ({"model": "router", "messages": HI, "max_tokens": 0}, "max_tokens"),
        ({"model": "router", "messages": HI, "max_completion_tokens": 0}, "max_completion_tokens must be at least 1"),
    ],
)
def test_bad_bodies_are_400_problems(router_url: str, body: dict[str, object], names: str) -> None:
    """Malformed chat completion bodies get a 400 problem naming the problem."""
    r = httpx.post(f"{router_url}/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert names in r.text


def test_failing_llm_falls_back_to_the_canned_default(sdk: openai.OpenAI, fake_llm: FakeLLM) -> None:
    """When the route's LLM keeps failing, the default agent answers and the headers say why."""
    fake_llm.always("gpt-4o-mini", Fail(503))
    raw = sdk.chat.completions.with_raw_response.create(
        model="router", messages=[{"role": "user", "content": SHIPPED.routes[0].examples[0]}]
    )
    assert raw.parse().choices[0].message.content == DEFAULT_REPLY
    assert raw.headers["x-router-agent"] == "default-agent"
    assert raw.headers["x-router-model"] == "canned"
    assert "HTTP 503" in raw.headers["x-router-fallback-reason"]
    assert len(fake_llm.calls()) == 3  # 1 try + 2 retries (the agents' default)


def test_mid_stream_failure_raises_in_the_sdk(sdk: openai.OpenAI, fake_llm: FakeLLM) -> None:
    """A stream the LLM breaks off ends with an error chunk, which the SDK raises as APIError."""
    fake_llm.script("gpt-4o-mini", DropMidStream(after=2))
    stream = sdk.chat.completions.create(
        model="router",
        messages=[{"role": "user", "content": SHIPPED.routes[0].examples[0]}],
        stream=True,
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        received.extend(chunk.choices[0].delta.content or "" for chunk in stream)
    assert "".join(received)
    assert "mid-stream" in caught.value.message
    assert caught.value.type == "router_error"  # OpenAI's error type, not the problem's URI


def test_offline_router_says_which_route_has_no_endpoint(offline_sdk: openai.OpenAI) -> None:
    """With no endpoint configured, the SDK still gets answers, streamed or not, and the answer
    says plainly which route was chosen and that its agent has no endpoint configured (not the
    default agent's off-topic reply)."""
    route = SHIPPED.routes[0]
    query = route.examples[0]
    completion = offline_sdk.chat.completions.create(model="router", messages=[{"role": "user", "content": query}])
    text = completion.choices[0].message.content or ""
    assert completion.model == f"router/{route.name}/canned"
    assert f"routed to {route.name!r}" in text and route.agent.name in text
    assert "no LLM endpoint configured" in text and text != DEFAULT_REPLY
    stream = offline_sdk.chat.completions.create(
        model="router", messages=[{"role": "user", "content": query}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == text
