"""Agents against the stand-in LLM: retries, fallback chain, timeouts, endpoints and secrets."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from devkit.fake_llm import Drop, Fail, FakeLLM, Hang, Reply
from router_core import Embedder, load_routes, run_reindex
from router_core.agents import LLMAgent
from router_core.store import EdgeStore
from router_llm.backoff import Backoff
from router_llm.endpoints import OPENAI_BASE_URL
from router_llm.failures import retry_after_seconds
from router_llm.settings import LLMSettings
from service.agents import ClientRegistry, Unavailable, endpoint_ref, resolve
from tests.llm_fixtures import (
    FAKE_KEY,
    FAKE_KEY_ENV,
    UNSET_KEY_ENV,
    fast_llm,
    router_service,
    sse_events,
    write_routes,
)

DEFAULT_KEY_ENV = "DEFAULT_TEST_API_KEY"
DEFAULT_KEY = "sk-default-Pm3XwQ8rT5vN1kJd"
OTHER_KEY_ENV = "OTHER_TEST_API_KEY"
OTHER_KEY = "sk-other-Hy6Bn2Vc9Xz4Lq7W"
CANNED_DEFAULT = "I can talk about the weather and cooking."

WEATHER = "will it rain tomorrow"
COOKING = "how long do I boil an egg"
LOCAL = "how do you say thank you in spanish"
SPORTS = "who won the match last night"
GREETING = "hello there"


def route_files(fake_url: str) -> dict[str, dict[str, Any]]:
    """Small routes whose LLM agents call the fake server, each testing one behaviour."""
    on_fake = {"base_url": fake_url, "api_key_env": FAKE_KEY_ENV}
    return {
        "weather": {
            "description": "Weather forecasts.",
            "examples": [
                WEATHER,
                "what's the weather like today",
                "weather forecast for london",
                "is it going to be sunny this weekend",
                "how cold will it be tonight",
            ],
            "agent": {
                "kind": "llm",
                "name": "weather-agent",
                "model": "weather-main",
                "system_prompt": "You are the weather agent.",
                "retries": 2,
                "timeout_s": 2.0,
                "fallback_models": ["weather-backup-1", "weather-backup-2"],
                **on_fake,
            },
        },
        "cooking": {
            "description": "Cooking and recipes.",
            "examples": [
                COOKING,
                "recipe for pancakes",
                "how do I make pasta sauce",
                "what can I cook with chicken and rice",
                "what temperature to bake bread",
            ],
            "agent": {
                "kind": "llm",
                "name": "cooking-agent",
                "model": "cook",
                "retries": 0,
                "timeout_s": 1.0,
                **on_fake,
            },
        },
        "local": {
            "description": "Translations, answered by a keyless local model.",
            "examples": [LOCAL, "translate this sentence into french", "what does bonjour mean"],
            "agent": {"kind": "llm", "name": "local-agent", "model": "local-model", "base_url": fake_url},
        },
        "sports": {
            "description": "Sports, whose agent has no endpoint configured.",
            "examples": [SPORTS, "latest basketball scores", "tell me about football results"],
            "agent": {"kind": "llm", "name": "sports-agent", "model": "sports-model", "api_key_env": UNSET_KEY_ENV},
        },
        "greeting": {
            "description": "Greetings.",
            "examples": [GREETING, "hi, how are you", "good morning"],
            "agent": {"kind": "canned", "name": "greeting-agent", "reply": "Hello!"},
        },
    }


def router_file(default_agent: dict[str, Any]) -> dict[str, Any]:
    return {"name": "router", "k": 3, "threshold": 0.5, "default_agent": default_agent}


CANNED = {"kind": "canned", "name": "default-agent", "reply": CANNED_DEFAULT}


def llm_default(fake_url: str) -> dict[str, Any]:
    return {
        "kind": "llm",
        "name": "fallback-agent",
        "model": "default-model",
        "retries": 0,
        "timeout_s": 1.0,
        "base_url": fake_url,
        "api_key_env": FAKE_KEY_ENV,
    }


@pytest.fixture(scope="module")
def agents_env(llm_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The fake key, plus a router default key that must never reach other endpoints."""
    llm_env.setenv(DEFAULT_KEY_ENV, DEFAULT_KEY)
    return llm_env


def agents_llm() -> LLMSettings:
    return fast_llm(api_key_env=DEFAULT_KEY_ENV)


@pytest.fixture(scope="module")
def canned_default(
    tmp_path_factory: pytest.TempPathFactory,
    embedder: Embedder,
    fake_llm_server: FakeLLM,
    agents_env: pytest.MonkeyPatch,
) -> Iterator[httpx.Client]:
    """A service whose default agent is canned."""
    root = tmp_path_factory.mktemp("agents-canned")
    routes = write_routes(root / "routes", router_file(CANNED), route_files(fake_llm_server.url))
    with (
        router_service(routes, root / "data", embedder, agents_llm()) as url,
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def llm_default_url(
    tmp_path_factory: pytest.TempPathFactory,
    embedder: Embedder,
    fake_llm_server: FakeLLM,
    agents_env: pytest.MonkeyPatch,
) -> Iterator[str]:
    """A service whose default agent is itself an LLM agent on the fake server."""
    root = tmp_path_factory.mktemp("agents-llm")
    fake = fake_llm_server.url
    routes = write_routes(root / "routes", router_file(llm_default(fake)), route_files(fake))
    with router_service(routes, root / "data", embedder, agents_llm()) as url:
        yield url


def answer(client: httpx.Client, query: str, **more: Any) -> httpx.Response:
    return client.post("/v1/answer", json={"query": query, **more})


# -- retries and the fallback chain ---------------------------------------------------------
@pytest.mark.parametrize(
    "failure",
    [Fail(500), Fail(503), Fail(429, retry_after=0.01), Drop()],
    ids=["500", "503", "429", "dropped"],
)
def test_transient_failures_are_retried_on_the_same_model(
    canned_default: httpx.Client, fake_llm: FakeLLM, failure: Any
) -> None:
    """5xx, 429 and dropped connections are retried; the primary model then answers."""
    fake_llm.script("weather-main", failure, failure)
    r = answer(canned_default, WEATHER)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["answered_by"] == "weather-agent" and body["model"] == "weather-main"
    assert body["answer"] == f"[weather-main] {WEATHER}"
    assert body["fallback_reason"] is None
    assert len(body["attempts"]) == 2
    assert [c.model for c in fake_llm.calls()] == ["weather-main"] * 3


def test_a_retry_after_beyond_the_backoff_cap_moves_to_the_next_model(
    canned_default: httpx.Client, fake_llm: FakeLLM
) -> None:
    """A 429 asking for 30 s is not waited out (nor retried): the next fallback model answers."""
    fake_llm.script("weather-main", Fail(429, "slow down", retry_after=30))
    body = answer(canned_default, WEATHER).json()
    assert body["model"] == "weather-backup-1", body
    assert [c.model for c in fake_llm.calls()] == ["weather-main", "weather-backup-1"]
    assert body["attempts"][0]["status"] == 429


def test_retry_after_is_read_in_every_form_servers_send() -> None:
    """retry-after-ms (OpenAI), Retry-After in seconds or as an HTTP date; junk is ignored."""
    now = 1_700_000_000.0
    assert retry_after_seconds({"retry-after-ms": "1500"}, now) == pytest.approx(1.5)
    assert retry_after_seconds({"retry-after-ms": "20", "retry-after": "9"}, now) == pytest.approx(0.02)
    assert retry_after_seconds({"retry-after": "7"}, now) == pytest.approx(7.0)
    date = formatdate(now + 120, usegmt=True)
    assert retry_after_seconds({"retry-after": date}, now) == pytest.approx(120.0)
    assert retry_after_seconds({"retry-after": formatdate(now - 60, usegmt=True)}, now) == 0.0
    assert retry_after_seconds({"retry-after": "soon"}, now) is None
    assert retry_after_seconds({}, now) is None


def test_fallback_models_are_tried_in_order(canned_default: httpx.Client, fake_llm: FakeLLM) -> None:
    """After its retries the primary gives way to each fallback model; 4xx is not retried."""
    fake_llm.always("weather-main", Fail(500))
    fake_llm.script("weather-backup-1", Fail(404, "no such model"))
    body = answer(canned_default, WEATHER).json()
    assert body["answered_by"] == "weather-agent" and body["model"] == "weather-backup-2"
    assert [c.model for c in fake_llm.calls()] == [
        "weather-main",
        "weather-main",
        "weather-main",
        "weather-backup-1",
        "weather-backup-2",
    ]
    assert [(a["model"], a["status"]) for a in body["attempts"]] == [
        ("weather-main", 500),
        ("weather-main", 500),
        ("weather-main", 500),
        ("weather-backup-1", 404),
    ]
    reason = body["fallback_reason"]
    assert "weather-main) failed 3 times: HTTP 500" in reason
    assert "weather-backup-1) failed: HTTP 404: no such model" in reason
    for call in fake_llm.calls():
        assert call.messages[0] == {"role": "system", "content": "You are the weather agent."}


@pytest.mark.slow
def test_timeout_falls_through_to_the_canned_default(canned_default: httpx.Client, fake_llm: FakeLLM) -> None:
    """A model that hangs past the agent's timeout_s gives way to the default agent."""
    fake_llm.always("cook", Hang())
    body = answer(canned_default, COOKING).json()
    assert body["route"] == "cooking" and body["agent"] == "cooking-agent"
    assert body["answered_by"] == "default-agent" and body["answer"] == CANNED_DEFAULT
    [attempt] = body["attempts"]
    assert attempt == {
        "agent": "cooking-agent",
        "model": "cook",
        "kind": "timeout",
        "error": "timed out after 1s",
    }
    assert "timed out" in body["fallback_reason"]


def test_agent_without_endpoint_is_skipped_at_once(canned_default: httpx.Client, fake_llm: FakeLLM) -> None:
    """An LLM agent with no base_url and no key answers through the default, with no call made."""
    body = answer(canned_default, SPORTS).json()
    assert body["route"] == "sports" and body["answered_by"] == "default-agent"
    assert body["attempts"][0]["kind"] == "unavailable"
    assert UNSET_KEY_ENV in body["fallback_reason"]
    assert fake_llm.calls() == []


def test_canned_route_agent_answers_without_llm(canned_default: httpx.Client, fake_llm: FakeLLM) -> None:
    """A canned route agent answers with its fixed reply."""
    body = answer(canned_default, GREETING).json()
    assert (body["route"], body["answer"], body["model"]) == ("greeting", "Hello!", "canned")
    assert fake_llm.calls() == []


def test_nothing_answering_is_a_502_naming_route_models_and_reasons(llm_default_url: str, fake_llm: FakeLLM) -> None:
    """When every model and the default LLM agent fail, a 502 problem says what was tried."""
    for model in ("weather-main", "weather-backup-1", "weather-backup-2", "default-model"):
        fake_llm.always(model, Fail(500))
    r = httpx.post(f"{llm_default_url}/v1/answer", json={"query": WEATHER}, timeout=30)
    assert r.status_code == 502
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["route"] == "weather"
    assert problem["models_tried"] == ["weather-main", "weather-backup-1", "weather-backup-2", "default-model"]
    assert len(problem["attempts"]) == 10
    assert {a["status"] for a in problem["attempts"]} == {500}
    assert "weather" in problem["detail"] and "fallback-agent (default-model)" in problem["detail"]


@pytest.mark.slow
def test_every_model_timing_out_is_a_504(llm_default_url: str, fake_llm: FakeLLM) -> None:
    """When every model reached timed out, the problem is a 504."""
    fake_llm.always("cook", Hang())
    fake_llm.always("default-model", Hang())
    r = httpx.post(f"{llm_default_url}/v1/answer", json={"query": COOKING}, timeout=30)
    assert r.status_code == 504
    problem = r.json()
    assert problem["models_tried"] == ["cook", "default-model"]
    assert {a["kind"] for a in problem["attempts"]} == {"timeout"}


def test_openai_client_sees_502_streaming_or_not(llm_default_url: str, fake_llm: FakeLLM) -> None:
    """Through the SDK, a request nothing can answer fails with status 502 before any chunk."""
    for model in ("weather-main", "weather-backup-1", "weather-backup-2", "default-model"):
        fake_llm.always(model, Fail(503))
    sdk = openai.OpenAI(base_url=f"{llm_default_url}/v1", api_key="x", max_retries=0)
    messages: Any = [{"role": "user", "content": WEATHER}]
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as caught:
            sdk.chat.completions.create(model="router", messages=messages, stream=stream)
        assert caught.value.status_code == 502
        assert isinstance(caught.value.body, dict) and caught.value.body["route"] == "weather"


# -- streaming ------------------------------------------------------------------------------
def test_stream_fails_over_until_the_first_token(canned_default: httpx.Client, fake_llm: FakeLLM) -> None:
    """A stream that fails before its first token is retried and falls to the next model."""
    fake_llm.always("weather-main", Fail(503))
    events = sse_events(answer(canned_default, WEATHER, stream=True))
    assert [n for n, _ in events][:2] == ["route", "agent"] and events[-1][0] == "done"
    agent = events[1][1]
    assert agent["model"] == "weather-backup-1" and len(agent["attempts"]) == 3
    text = "".join(d["content"] for n, d in events if n == "delta")
    assert text == f"[weather-backup-1] {WEATHER}"


@pytest.mark.slow
def test_slow_first_token_times_out_to_the_default(canned_default: httpx.Client, fake_llm: FakeLLM) -> None:
    """A stream whose first token takes longer than timeout_s counts as a timeout."""
    fake_llm.always("cook", Reply(first_delay_s=5.0))
    events = sse_events(answer(canned_default, COOKING, stream=True))
    assert events[1][1]["answered_by"] == "default-agent"
    assert events[1][1]["attempts"][0]["kind"] == "timeout"
    assert events[2] == ("delta", {"content": CANNED_DEFAULT})


@pytest.mark.slow
def test_stall_mid_stream_ends_with_a_504_error_event(canned_default: httpx.Client, fake_llm: FakeLLM) -> None:
    """A stream that stalls after its first token ends with an error event, not a hang."""
    fake_llm.always("cook", Reply(chunks=3, delay_s=5.0))
    events = sse_events(answer(canned_default, COOKING, stream=True))
    assert [n for n, _ in events] == ["route", "agent", "delta", "error"]
    assert events[-1][1]["status"] == 504
    assert events[-1][1]["attempts"][-1]["kind"] == "timeout"


# -- endpoints and secrets ------------------------------------------------------------------
def test_api_keys_never_leak_into_responses_or_logs(
    canned_default: httpx.Client,
    llm_default_url: str,
    fake_llm: FakeLLM,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An upstream error echoing the key is masked in bodies, headers, events and logs."""
    caplog.set_level(logging.DEBUG)
    for model in ("weather-main", "weather-backup-1", "weather-backup-2", "default-model"):
        fake_llm.always(model, Fail(500, echo_auth=True))
    sdk = openai.OpenAI(base_url=f"{llm_default_url}/v1", api_key="x", max_retries=0)
    seen: list[str] = []
    r = answer(canned_default, WEATHER)
    seen += [r.text, str(r.headers)]
    r = answer(canned_default, WEATHER, stream=True)
    seen += [r.text, str(r.headers)]
    r = httpx.post(f"{llm_default_url}/v1/answer", json={"query": WEATHER}, timeout=30)
    assert r.status_code == 502
    seen += [r.text, str(r.headers)]
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model="router", messages=[{"role": "user", "content": WEATHER}])
    seen.append(str(caught.value.body))
    seen += [canned_default.get("/v1/routes").text]
    seen += [rec.getMessage() for rec in caplog.records]
    assert fake_llm.calls()[0].headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert "Bearer ***" in r.text  # the echoed key was there, masked
    failures = [r.getMessage() for r in caplog.records if r.name == "router.agents"]
    assert any("Bearer ***" in line for line in failures)
    for text in seen:
        assert FAKE_KEY not in text
        assert DEFAULT_KEY not in text


def test_default_key_is_never_sent_to_an_agent_own_endpoint(canned_default: httpx.Client, fake_llm: FakeLLM) -> None:
    """An agent with its own base_url and no api_key_env calls keyless, not with the router key."""
    body = answer(canned_default, LOCAL).json()
    assert body["answered_by"] == "local-agent" and body["model"] == "local-model"
    [call] = fake_llm.calls()
    assert call.headers["authorization"] == "Bearer unused"


def test_endpoint_resolution_rules() -> None:
    """Agent settings win; no URL means api.openai.com only with a key; else unavailable."""
    llm = LLMSettings(api_key_env="DEF_KEY")
    bare = LLMAgent(name="a", model="m")
    env = {"DEF_KEY": "sk-def", "OWN_KEY": "sk-own"}
    found = resolve(endpoint_ref(bare, llm), env)
    assert not isinstance(found, Unavailable)
    assert (found.base_url, found.key_env) == (OPENAI_BASE_URL, "DEF_KEY")
    assert "sk-def" not in repr(found)
    assert isinstance(resolve(endpoint_ref(bare, llm), {}), Unavailable)
    own = LLMAgent(name="a", model="m", base_url="http://local:11434/v1")
    found = resolve(endpoint_ref(own, llm), env)
    assert not isinstance(found, Unavailable) and found.api_key is None
    keyed = LLMAgent(name="a", model="m", base_url="http://local:11434/v1", api_key_env="OWN_KEY")
    found = resolve(endpoint_ref(keyed, llm), env)
    assert not isinstance(found, Unavailable) and found.api_key is not None
    assert found.api_key.get_secret_value() == "sk-own"
    same = LLMSettings(base_url="http://gw/v1/", api_key_env="DEF_KEY")
    found = resolve(endpoint_ref(LLMAgent(name="a", model="m", base_url="http://gw/v1"), same), env)
    assert not isinstance(found, Unavailable) and found.key_env == "DEF_KEY"


def test_one_client_per_distinct_endpoint(tmp_path: Path, fake_llm_server: FakeLLM) -> None:
    """Agents sharing base URL and key variable share one client; unavailable ones get none."""
    files = route_files(fake_llm_server.url)
    routes = write_routes(tmp_path / "routes", router_file(CANNED), files)
    registry = ClientRegistry(agents_llm(), environ={FAKE_KEY_ENV: FAKE_KEY})
    table = load_routes(routes)
    registry.prepare(table)
    assert {(e.base_url, e.key_env) for e in registry.endpoints} == {
        (fake_llm_server.url, None),
        (fake_llm_server.url, FAKE_KEY_ENV),
    }
    assert len(registry.endpoints) == 2
    weather, cooking = table.agent_for("weather"), table.agent_for("cooking")
    assert isinstance(weather, LLMAgent) and isinstance(cooking, LLMAgent)
    assert registry.lookup(weather) is registry.lookup(cooking)
    sports = table.agent_for("sports")
    assert isinstance(sports, LLMAgent) and isinstance(registry.lookup(sports), Unavailable)
    asyncio.run(registry.close())
    assert registry.endpoints == []


def test_clients_are_created_for_agents_added_by_a_live_reindex(
    tmp_path: Path,
    embedder: Embedder,
    fake_llm: FakeLLM,
    agents_env: pytest.MonkeyPatch,
) -> None:
    """A route added by a live re-index answers through a new client, keyed as configured."""
    agents_env.setenv(OTHER_KEY_ENV, OTHER_KEY)
    files = route_files(fake_llm.url)
    routes = write_routes(tmp_path / "routes", router_file(CANNED), files)
    with router_service(routes, tmp_path / "data", embedder, agents_llm()) as url:
        files["travel"] = {
            "description": "Travel.",
            "examples": ["book me a flight to rome", "cheap hotels in paris", "train times to berlin"],
            "agent": {
                "kind": "llm",
                "name": "travel-agent",
                "model": "travel-model",
                "base_url": fake_llm.url,
                "api_key_env": OTHER_KEY_ENV,
            },
        }
        write_routes(routes, router_file(CANNED), files)
        run_reindex(load_routes(routes), EdgeStore(tmp_path / "data"), embedder)
        deadline = time.monotonic() + 20
        while "travel" not in httpx.get(f"{url}/v1/routes").text:
            assert time.monotonic() < deadline, "the service did not pick up the new version"
            time.sleep(0.1)
        body = httpx.post(f"{url}/v1/answer", json={"query": "cheap hotels in paris"}).json()
    assert body["route"] == "travel" and body["answered_by"] == "travel-agent"
    [call] = fake_llm.calls("travel-model")
    assert call.headers["authorization"] == f"Bearer {OTHER_KEY}"


def test_backoff_grows_is_capped_and_honours_retry_after() -> None:
    """Delays double from the initial value up to the cap; Retry-After wins up to the cap."""
    b = Backoff(initial_s=0.1, multiplier=2.0, max_s=0.5, jitter=0.0)
    assert [round(b.delay(n), 3) for n in range(1, 6)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert b.delay(1, retry_after=0.3) == pytest.approx(0.3)
    assert b.delay(1, retry_after=60) == pytest.approx(0.5)
    jittered = Backoff(initial_s=1.0, multiplier=2.0, max_s=10.0, jitter=0.5)
    assert jittered.delay(1, rand=lambda: 0.0) == pytest.approx(0.5)
    assert jittered.delay(1, rand=lambda: 1.0) == pytest.approx(1.5)


def test_route_files_written_for_these_tests_validate(tmp_path: Path) -> None:
    """The test routes are valid route files (sanity of the fixtures themselves)."""
    routes = write_routes(tmp_path / "r", router_file(CANNED), route_files("http://127.0.0.1:1/v1"))
    table = load_routes(routes)
    assert {r.name for r in table.routes} == {"weather", "cooking", "local", "sports", "greeting"}
    assert yaml.safe_load((routes / "_router.yaml").read_text())["default_agent"] == CANNED
