"""The LLM decision layer: mode llm and mode hybrid, against a real OpenAI-compatible server on
loopback standing in for the decision model (the only fake), through the real app over HTTP."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from devkit.fake_llm import Fail, FakeLLM, Hang, Reply
from devkit.routes_dirs import FAKE_KEY, FAKE_KEY_ENV, write_routes
from devkit.serving import SHIPPED_ROUTES
from devkit.waiting import wait_for
from router_core.llm_routing import read_choice
from router_llm.settings import DeciderSettings

DECIDER = "decision-model"
CONFIDENT = "How do I use async with Rust?"


def decider_settings(fake: FakeLLM, **overrides: Any) -> DeciderSettings:
    return DeciderSettings(
        **{"model": DECIDER, "base_url": fake.url, "api_key_env": FAKE_KEY_ENV, "timeout_s": 2.0, **overrides}
    )


def llm_routes(target: Path) -> Path:
    """Two routes with a description and no examples, in mode llm."""
    return write_routes(
        target,
        {"mode": "llm", "llm": {"examples_per_route": 0}},
        {
            "maths": {"description": "Arithmetic, percentages and equations.", "agent": _canned("maths")},
            "coding": {"description": "Programming questions in any language.", "agent": _canned("coding")},
        },
    )


def _canned(name: str) -> dict[str, str]:
    return {"kind": "canned", "name": f"{name}-agent", "reply": f"{name} says hi"}


def hybrid_routes(target: Path, **llm: Any) -> Path:
    """The shipped routes in mode hybrid, with the given band."""
    shutil.copytree(SHIPPED_ROUTES, target)
    router_file = target / "_router.yaml"
    data = yaml.safe_load(router_file.read_text(encoding="utf-8"))
    data.update(mode="hybrid", llm=llm)
    router_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return target


def classify(url: str, **body: Any) -> dict[str, Any]:
    with httpx.Client(base_url=url, timeout=30) as c:
        resp = c.post("/v1/classify", json=body)
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


# -- mode llm ------------------------------------------------------------------------------------
def test_llm_mode_routes_by_the_model_answer(tmp_path: Path, serve_routes: Any, fake_llm: FakeLLM) -> None:
    """Routes without examples; the decision model's answer is the route, and it saw every route
    name in a JSON-schema enum plus 'none'."""
    fake_llm.always(DECIDER, Reply('{"route": "maths"}'))
    url = serve_routes(llm_routes(tmp_path / "llm"), decider_settings(fake_llm))
    body = classify(url, query="what is seven times six")
    assert (body["route"], body["decided_by"], body["reason"], body["fallback"]) == ("maths", "llm", "llm", False)
    assert body["llm"]["model"] == DECIDER and body["llm"]["outcome"] == "chosen"
    [call] = fake_llm.calls(DECIDER)
    schema = call.body["response_format"]["json_schema"]["schema"]
    assert sorted(schema["properties"]["route"]["enum"]) == ["coding", "maths", "none"]
    assert "seven times six" in call.messages[-1]["content"]
    assert call.body["temperature"] == 0


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ('{"route": "weather"}', "llm_unrecognised"),
        ("I think maths", "llm_unrecognised"),
        ('{"route": "none"}', "llm_none"),
    ],
)
def test_llm_mode_answers_outside_the_list_go_to_the_default_route(
    tmp_path: Path, serve_routes: Any, fake_llm: FakeLLM, answer: str, reason: str
) -> None:
    """An answer naming no route (or 'none') is the default route with its reason, never an error."""
    fake_llm.always(DECIDER, Reply(answer))
    url = serve_routes(llm_routes(tmp_path / "llm"), decider_settings(fake_llm))
    body = classify(url, query="hello there")
    assert (body["route"], body["fallback"], body["reason"]) == ("default", True, reason)


def test_hanging_decision_model_does_not_hold_the_request(tmp_path: Path, serve_routes: Any, fake_llm: FakeLLM) -> None:
    """A decision model that never answers: the request returns at the decision deadline with the
    default route (reason llm_failed, outcome timeout), well inside the client's 30 s."""
    fake_llm.always(DECIDER, Hang())
    url = serve_routes(llm_routes(tmp_path / "llm"), decider_settings(fake_llm, timeout_s=0.3, retries=0))
    body = classify(url, query="what is seven times six")
    assert (body["route"], body["reason"], body["llm"]["outcome"]) == ("default", "llm_failed", "timeout")


def test_endpoint_without_json_schema_gets_json_object(tmp_path: Path, serve_routes: Any, fake_llm: FakeLLM) -> None:
    """An endpoint refusing json_schema is asked again at once in json_object (retries untouched),
    and an answer that ignores the format is still parsed strictly."""
    fake_llm.script(DECIDER, Fail(400, "response_format json_schema is not supported"))
    fake_llm.always(DECIDER, Reply("coding"))
    url = serve_routes(llm_routes(tmp_path / "llm"), decider_settings(fake_llm, retries=0))
    assert classify(url, query="write me a quicksort")["route"] == "coding"
    first, second = fake_llm.calls(DECIDER)
    assert (first.body["response_format"]["type"], second.body["response_format"]["type"]) == (
        "json_schema",
        "json_object",
    )


def test_llm_mode_answers_through_answer_and_chat_completions(
    tmp_path: Path, serve_routes: Any, fake_llm: FakeLLM
) -> None:
    """/v1/answer and /v1/chat/completions use the decision model too, and say so."""
    fake_llm.always(DECIDER, Reply('{"route": "coding"}'))
    url = serve_routes(llm_routes(tmp_path / "llm"), decider_settings(fake_llm))
    with httpx.Client(base_url=url, timeout=30) as c:
        answered = c.post("/v1/answer", json={"query": "write me a quicksort"}).json()
        chat = c.post(
            "/v1/chat/completions",
            json={"model": "router", "messages": [{"role": "user", "content": "and in Rust?"}]},
        ).json()
    assert (answered["route"], answered["decided_by"], answered["answer"]) == ("coding", "llm", "coding says hi")
    assert chat["router"]["route"] == "coding" and chat["router"]["decided_by"] == "llm"
    assert chat["router"]["llm"]["model"] == DECIDER


# -- mode hybrid ---------------------------------------------------------------------------------
def test_hybrid_asks_only_about_uncertain_queries_and_caches_the_answer(
    tmp_path: Path,
    serve_routes: Any,
    fake_llm: FakeLLM,
    client: httpx.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A confident query never reaches the model; a query in the band does, once: the repeat is
    answered from the cache; metrics and the access log show the escalation; no key leaks."""
    uncertain = "What does the enterprise plan cost for a team using the API?"
    plain = {q: client.post("/v1/classify", json={"query": q}).json() for q in (CONFIDENT, uncertain)}
    assert plain[CONFIDENT]["score"] > plain[uncertain]["score"]
    threshold = client.get("/v1/routes").json()["threshold"]
    # The band reaches above the uncertain query's score but stays below the confident one's.
    band_above = round((plain[CONFIDENT]["score"] + plain[uncertain]["score"]) / 2 - threshold, 4)
    fake_llm.always(DECIDER, Reply('{"route": "sales_engineering"}'))
    routes = hybrid_routes(tmp_path / "hybrid", band_above=band_above, band_below=1.0, min_lead=0.0)
    url = serve_routes(routes, decider_settings(fake_llm))
    with caplog.at_level(logging.INFO, logger="router.access"):
        confident = classify(url, query=CONFIDENT)
        first = classify(url, query=uncertain)
        repeat = classify(url, query=uncertain.upper())  # the cache key is the normalised query
        # An access line is written once its response has gone out, just after the client has it.
        wait_for(lambda: sum(r.name == "router.access" for r in caplog.records) >= 3, 10, "the access lines")
    assert confident["decided_by"] == "vote" and "llm" not in confident
    assert first["decided_by"] == "llm" and first["route"] == "sales_engineering"
    assert repeat["llm"]["cached"] is True and repeat["route"] == "sales_engineering"
    [call] = fake_llm.calls(DECIDER)
    offered = call.body["response_format"]["json_schema"]["schema"]["properties"]["route"]["enum"]
    assert 2 <= len(offered) <= 4 and offered[-1] == "none"  # the vote's best candidates, then none
    with httpx.Client(base_url=url, timeout=30) as c:
        metrics = c.get("/metrics").text
    assert (
        'router_llm_decisions_total{cached="false",mode="hybrid",outcome="chosen",route_set="default"} 1.0' in metrics
    )
    assert 'router_llm_decisions_total{cached="true",mode="hybrid",outcome="chosen",route_set="default"} 1.0' in metrics
    assert "router_llm_decision_seconds_count" in metrics
    access = [r for r in caplog.records if r.name == "router.access"]
    assert any(getattr(r, "fields", {}).get("llm_outcome") == "chosen" for r in access)
    assert FAKE_KEY not in caplog.text and FAKE_KEY not in metrics
    assert call.headers.get("authorization") == f"Bearer {FAKE_KEY}"


def test_hybrid_keeps_the_vote_when_the_model_fails_and_masks_its_error(
    tmp_path: Path, serve_routes: Any, fake_llm: FakeLLM
) -> None:
    """A failing decision model leaves the vote's decision in place; the response says why, key masked."""
    fake_llm.always(DECIDER, Fail(500, "backend exploded", echo_auth=True))
    routes = hybrid_routes(tmp_path / "hybrid", band_above=1.0, band_below=1.0)  # everything escalates
    url = serve_routes(routes, decider_settings(fake_llm, retries=0))
    body = classify(url, query=CONFIDENT)
    assert (body["route"], body["decided_by"], body["reason"]) == ("coding", "vote", "vote")
    assert body["llm"]["outcome"] == "error" and "HTTP 500" in body["llm"]["detail"]
    assert FAKE_KEY not in str(body)


def test_hybrid_without_a_decision_model_serves_the_vote(tmp_path: Path, serve_routes: Any, fake_llm: FakeLLM) -> None:
    """No decision model configured: every decision is the vote's, the response names why the model was not asked."""
    routes = hybrid_routes(tmp_path / "hybrid", band_above=1.0, band_below=1.0)
    url = serve_routes(routes, DeciderSettings())
    body = classify(url, query=CONFIDENT)
    assert body["route"] == "coding" and body["llm"]["outcome"] == "unavailable"
    assert not fake_llm.calls(DECIDER)


@pytest.mark.parametrize(
    ("text", "route", "recognised"),
    [
        ('{"route": "maths"}', "maths", True),
        ("maths", "maths", True),
        (' "maths". ', "maths", True),
        ('{"route": "none"}', None, True),
        ('{"route": "Maths"}', None, False),
        ('{"route": 3}', None, False),
        ("{not json", None, False),
        ("", None, False),
    ],
)
def test_answers_are_read_strictly(text: str, route: str | None, recognised: bool) -> None:
    """Only an allowed name (as JSON or bare) or 'none' is recognised."""
    choice = read_choice(text, ["maths", "coding"])
    assert (choice.route, choice.recognised) == (route, recognised)
