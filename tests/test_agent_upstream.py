"""Upstream misbehaviour falls back visibly, and output parameters reach the agent: a streamed
request answered with a non-event-stream body fails over like any other error; response_format,
logprobs and prediction are forwarded, and what cannot be honoured is a 400 naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from devkit.fake_llm import Fail, FakeLLM, LogprobReply, RawBody
from router_core import Embedder
from tests.llm_fixtures import router_service, sse_events, write_routes
from tests.test_agents import CANNED, CANNED_DEFAULT, GREETING, WEATHER, agents_llm, route_files, router_file

JSON_PAGE = RawBody(200, "application/json", '{"id": "x", "object": "chat.completion", "choices": []}')


@pytest.fixture(scope="module")
def agents_url(
    tmp_path_factory: pytest.TempPathFactory,
    embedder: Embedder,
    fake_llm_server: FakeLLM,
    llm_env: pytest.MonkeyPatch,
) -> Iterator[str]:
    """Small routes on the fake LLM (weather: main model and two fallbacks; greeting: canned)
    behind a canned default agent."""
    llm_env.setenv("DEFAULT_TEST_API_KEY", "sk-default-Pm3XwQ8rT5vN1kJd")
    root = tmp_path_factory.mktemp("agents-upstream")
    routes = write_routes(root / "routes", router_file(CANNED), route_files(fake_llm_server.url))
    with router_service(routes, root / "data", embedder, agents_llm()) as url:
        yield url


@pytest.fixture
def sdk(agents_url: str) -> Iterator[openai.OpenAI]:
    """The official client pointed at the router."""
    with openai.OpenAI(base_url=f"{agents_url}/v1", api_key="unused", max_retries=0) as c:
        yield c


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# -- item 5: a streamed request answered without an event stream ----------------------------------
@pytest.mark.parametrize("page", [RawBody(), JSON_PAGE], ids=["html-page", "json-body"])
def test_a_non_event_stream_body_on_a_streamed_answer_fails_over(
    agents_url: str, fake_llm: FakeLLM, page: RawBody
) -> None:
    """The primary model answers a streamed request 200 with an HTML page (or a JSON body): the
    next model answers the stream, and the agent event says why (it used to be an empty answer
    with finish_reason stop and no error)."""
    fake_llm.always("weather-main", page)
    r = httpx.post(f"{agents_url}/v1/answer", json={"query": WEATHER, "stream": True}, timeout=30)
    events = sse_events(r)
    assert [name for name, _ in events][:2] == ["route", "agent"] and events[-1][0] == "done"
    agent = events[1][1]
    assert (agent["answered_by"], agent["model"]) == ("weather-agent", "weather-backup-1")
    assert "not an event stream" in agent["fallback_reason"]
    assert agent["attempts"][0]["error"].startswith("invalid response: a streamed request was answered with")
    assert "".join(data["content"] for name, data in events if name == "delta") == f"[weather-backup-1] {WEATHER}"


def test_the_sdk_stream_falls_back_when_every_model_answers_a_page(sdk: openai.OpenAI, fake_llm: FakeLLM) -> None:
    """Every model of the agent answers the stream with an HTML page: the SDK receives the
    default agent's answer and the headers say why, never an empty message."""
    for model in ("weather-main", "weather-backup-1", "weather-backup-2"):
        fake_llm.always(model, RawBody())
    raw = sdk.chat.completions.with_raw_response.create(model="router", messages=ask(WEATHER), stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == CANNED_DEFAULT
    assert raw.headers["x-router-agent"] == "default-agent"
    assert "not an event stream" in raw.headers["x-router-fallback-reason"]


# -- item 7: output parameters ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "city", "schema": {"type": "object"}, "strict": True}},
    ],
    ids=["json_object", "json_schema"],
)
def test_response_format_reaches_the_agent(
    sdk: openai.OpenAI, fake_llm: FakeLLM, response_format: dict[str, Any]
) -> None:
    """response_format (json_object, json_schema) is forwarded to the agent's endpoint as sent."""
    completion = sdk.chat.completions.create(
        model="router",
        messages=ask(WEATHER),
        response_format=response_format,  # type: ignore[arg-type]
    )
    assert completion.model == "router/weather/weather-main"
    [call] = fake_llm.calls("weather-main")
    assert call.body["response_format"] == response_format


def test_logprobs_reach_the_agent_and_come_back(sdk: openai.OpenAI, fake_llm: FakeLLM) -> None:
    """logprobs and top_logprobs are forwarded; the endpoint's log probabilities come back on the
    choice, and on each chunk of a stream."""
    fake_llm.always("weather-main", LogprobReply("light rain"))
    completion = sdk.chat.completions.create(model="router", messages=ask(WEATHER), logprobs=True, top_logprobs=2)
    [call] = fake_llm.calls("weather-main")
    assert (call.body["logprobs"], call.body["top_logprobs"]) == (True, 2)
    probs = completion.choices[0].logprobs
    assert probs is not None and probs.content is not None
    assert "".join(t.token for t in probs.content) == "light rain"
    stream = sdk.chat.completions.create(model="router", messages=ask(WEATHER), logprobs=True, stream=True)
    tokens = [
        t.token
        for chunk in stream
        if chunk.choices and chunk.choices[0].logprobs is not None
        for t in chunk.choices[0].logprobs.content or []
    ]
    assert "".join(tokens) == "light rain"


def test_prediction_reaches_the_agent_and_text_modality_is_accepted(sdk: openai.OpenAI, fake_llm: FakeLLM) -> None:
    """prediction is forwarded as sent; modalities ["text"] is what the router answers anyway."""
    prediction = {"type": "content", "content": "Rain is expected tomorrow."}
    sdk.chat.completions.create(
        model="router",
        messages=ask(WEATHER),
        prediction=prediction,  # type: ignore[arg-type]
        modalities=["text"],
    )
    [call] = fake_llm.calls("weather-main")
    assert call.body["prediction"] == prediction and "modalities" not in call.body


@pytest.mark.parametrize(
    ("extra", "field", "needle"),
    [
        ({"modalities": ["text", "audio"]}, "modalities", "modalities ['audio'] cannot be honoured"),
        ({"response_format": {"type": "xml"}}, "response_format", "response_format.type is 'xml'"),
        ({"response_format": {"type": "json_schema"}}, "response_format", "needs a json_schema object"),
        ({"top_logprobs": 3}, "top_logprobs", "top_logprobs needs logprobs: true"),
    ],
    ids=["audio", "unknown-format", "schema-missing", "top-logprobs-alone"],
)
def test_what_no_agent_can_honour_is_a_400_naming_the_field(
    agents_url: str, fake_llm: FakeLLM, extra: dict[str, Any], field: str, needle: str
) -> None:
    """Audio output, an unknown response format, a json_schema format without its schema,
    top_logprobs without logprobs: a 400 problem naming the field; no agent is called."""
    body = {"model": "router", "messages": ask(WEATHER), **extra}
    r = httpx.post(f"{agents_url}/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == 400 and r.json()["field"] == field and needle in r.json()["detail"], r.text
    assert fake_llm.calls() == []


@pytest.mark.parametrize(
    ("extra", "field"),
    [({"response_format": {"type": "json_object"}}, "response_format"), ({"logprobs": True}, "logprobs")],
    ids=["response_format", "logprobs"],
)
def test_a_canned_route_refuses_what_only_a_model_can_honour(
    agents_url: str, fake_llm: FakeLLM, extra: dict[str, Any], field: str
) -> None:
    """A route answered by a canned agent cannot give JSON or log probabilities: 400 naming the
    field and the agent (not a plain-text reply pretending to be JSON)."""
    body = {"model": "router", "messages": ask(GREETING), **extra}
    r = httpx.post(f"{agents_url}/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == 400, r.text
    problem = r.json()
    assert problem["field"] == field and "canned agent greeting-agent" in problem["detail"]


def test_no_canned_fallback_for_a_json_answer(sdk: openai.OpenAI, fake_llm: FakeLLM) -> None:
    """When every model of the route fails, a request for JSON is a 502 naming the failures and
    that a canned reply cannot honour response_format, never the canned default's text."""
    for model in ("weather-main", "weather-backup-1", "weather-backup-2"):
        fake_llm.always(model, Fail(400, "response_format is not supported by this model"))
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model="router", messages=ask(WEATHER), response_format={"type": "json_object"})
    assert caught.value.status_code == 502
    detail = str(caught.value.body)
    assert "response_format is not supported" in detail and "cannot honour response_format" in detail
