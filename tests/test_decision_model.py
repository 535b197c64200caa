"""The decision model behind servers people run locally: structured output negotiated per
endpoint (json_schema, json_object with the schema, plain), remembered for a while and shown to
operators; a 200 that is no chat completion falls back; only real answers are cached. Against a
real OpenAI-compatible server on loopback standing in for llama.cpp, an OpenAI-like gateway or a
proxy (the only fake), through the real app over HTTP and the real `openai` client."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from devkit.fake_llm import FakeLLM, Formats, Html, Reply
from router_llm.structured_output import OutputModes, refuses_format
from tests.test_llm_routing import (
    CONFIDENT,
    DECIDER,
    classify,
    decider_settings,
    hybrid_routes,
    llm_routes,
)


def formats_of(fake: FakeLLM) -> list[str]:
    """The response_format type of each call to the decision model, "plain" for none."""
    return [(c.body.get("response_format") or {}).get("type", "plain") for c in fake.calls(DECIDER)]


def get(url: str, path: str) -> dict[str, Any]:
    with httpx.Client(base_url=url, timeout=30) as c:
        resp = c.get(path)
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


# -- negotiation over HTTP -----------------------------------------------------------------------
@pytest.mark.parametrize("status", [500, 400], ids=["llama-cpp-python-500", "openai-like-400"])
def test_hybrid_decides_through_a_server_refusing_json_schema(
    tmp_path: Path, serve_routes: Any, fake_llm: FakeLLM, status: int
) -> None:
    """A server refusing json_schema (HTTP 500 as llama-cpp-python, or 400) and taking json_object
    with the schema: the hybrid's decisions come from the model (outcome chosen), the next request
    goes straight to json_object, and /admin/index and /readyz show the mode in use and why."""
    fake_llm.always(DECIDER, Formats("coding", refuse=("json_schema",), status=status))
    routes = hybrid_routes(tmp_path / "hybrid", band_above=1.0, band_below=1.0)  # everything escalates
    url = serve_routes(routes, decider_settings(fake_llm, retries=0))
    first = classify(url, query=CONFIDENT)
    second = classify(url, query="What is 15% of 200?")
    for body in (first, second):
        assert (body["decided_by"], body["reason"], body["llm"]["outcome"]) == ("llm", "llm", "chosen")
    assert first["route"] == "coding"
    assert formats_of(fake_llm) == ["json_schema", "json_object", "json_object"]
    sent = fake_llm.calls(DECIDER)[1].body["response_format"]
    assert sent["schema"]["properties"]["route"]["enum"][-1] == "none"  # the schema rides along
    model = get(url, "/admin/index")["decision_model"]
    assert (model["model"], model["structured_output"], model["output_mode"]) == (DECIDER, "auto", "json_object")
    assert model["output_mode_confirmed"] is True and 0 < model["reprobe_in_s"] <= 600
    assert f"json_schema refused: HTTP {status}" in model["output_mode_refused"]
    assert model["endpoint"] == fake_llm.url and model["last_outcome"] == "chosen"
    ready = get(url, "/readyz")["checks"]["decision_model"]
    assert (ready["model"], ready["output_mode"], ready["last_error"]) == (DECIDER, "json_object", None)


def test_llm_mode_through_a_server_answering_plain_text_only(
    tmp_path: Path, serve_routes: Any, fake_llm: FakeLLM
) -> None:
    """A server refusing both JSON formats gets the plain prompt, its bare answer is read strictly,
    and later calls go straight to plain."""
    fake_llm.always(DECIDER, Formats("coding", refuse=("json_schema", "json_object"), status=400, plain=" coding. "))
    url = serve_routes(llm_routes(tmp_path / "llm"), decider_settings(fake_llm, retries=0))
    first = classify(url, query="write me a quicksort")
    second = classify(url, query="and a merge sort")
    assert (first["route"], first["reason"], second["route"]) == ("coding", "llm", "coding")
    assert formats_of(fake_llm) == ["json_schema", "json_object", "plain", "plain"]
    assert "response_format" not in fake_llm.calls(DECIDER)[-1].body
    assert get(url, "/admin/index")["decision_model"]["output_mode"] == "plain"


def test_json_schema_is_tried_again_after_the_ttl(tmp_path: Path, serve_routes: Any, fake_llm: FakeLLM) -> None:
    """A fallback is remembered for structured_output_ttl_s only: once it has passed, json_schema
    is probed again and used when the server now takes it."""
    fake_llm.always(DECIDER, Formats("maths", refuse=("json_schema",)))
    settings = decider_settings(fake_llm, retries=0, structured_output_ttl_s=0.3)
    url = serve_routes(llm_routes(tmp_path / "llm"), settings)
    assert classify(url, query="what is seven times six")["route"] == "maths"
    fake_llm.always(DECIDER, Formats("maths", refuse=()))  # the server was upgraded
    time.sleep(0.4)
    assert classify(url, query="what is eight times six")["route"] == "maths"
    assert formats_of(fake_llm) == ["json_schema", "json_object", "json_schema"]
    model = get(url, "/admin/index")["decision_model"]
    assert (model["output_mode"], model["output_mode_refused"], model["reprobe_in_s"]) == ("json_schema", None, None)


def test_a_fixed_setting_does_not_step_down(tmp_path: Path, serve_routes: Any, fake_llm: FakeLLM) -> None:
    """structured_output=json_schema against a server refusing it: one call, no retry, the default
    route (llm_failed) and a detail naming the setting to change."""
    fake_llm.always(DECIDER, Formats("maths", refuse=("json_schema",)))
    settings = decider_settings(fake_llm, retries=1, structured_output="json_schema")
    url = serve_routes(llm_routes(tmp_path / "llm"), settings)
    body = classify(url, query="what is seven times six")
    assert (body["route"], body["reason"], body["llm"]["outcome"]) == ("default", "llm_failed", "error")
    assert "ROUTER_DECIDER__STRUCTURED_OUTPUT=json_schema" in body["llm"]["detail"]
    assert formats_of(fake_llm) == ["json_schema"]


def test_json_object_setting_sends_the_schema_at_once(tmp_path: Path, serve_routes: Any, fake_llm: FakeLLM) -> None:
    """structured_output=json_object (a llama.cpp server) asks in json_object with the schema from the first call."""
    fake_llm.always(DECIDER, Formats("maths", refuse=("json_schema",)))
    url = serve_routes(llm_routes(tmp_path / "llm"), decider_settings(fake_llm, structured_output="json_object"))
    assert classify(url, query="what is seven times six")["llm"]["outcome"] == "chosen"
    assert formats_of(fake_llm) == ["json_object"]


# -- upstream misbehaviour falls back ------------------------------------------------------------
@pytest.mark.parametrize(
    "page",
    [
        Html(),
        Html(content_type="text/plain", body="upstream says hello"),
        Html(content_type="application/json", body='{"unexpected": true}'),
        Html(content_type="application/json", body='{"choices": "none"}'),
        Html(content_type="application/json", body="<html>not json after all</html>"),
    ],
    ids=["html", "text", "json-not-a-completion", "json-bad-choices", "json-content-type-html-body"],
)
def test_llm_mode_falls_back_on_a_200_that_is_no_chat_completion(
    tmp_path: Path, serve_routes: Any, fake_llm: FakeLLM, page: Html
) -> None:
    """A decision endpoint answering 200 with a page or JSON of another shape: the default route
    (llm_failed, outcome error), never a 500; the body is not echoed; /admin/index shows the error."""
    fake_llm.always(DECIDER, page)
    url = serve_routes(llm_routes(tmp_path / "llm"), decider_settings(fake_llm, retries=0))
    body = classify(url, query="what is seven times six")
    assert (body["route"], body["fallback"], body["reason"]) == ("default", True, "llm_failed")
    assert body["llm"]["outcome"] == "error" and body["llm"]["detail"].startswith("invalid response: HTTP 200")
    assert page.body not in body["llm"]["detail"]
    assert get(url, "/admin/index")["decision_model"]["last_error"] == body["llm"]["detail"]


def test_hybrid_keeps_the_vote_on_a_200_page(tmp_path: Path, serve_routes: Any, fake_llm: FakeLLM) -> None:
    """A proxy's HTML page with status 200 from the decision endpoint: the hybrid's vote stands, never a 500."""
    fake_llm.always(DECIDER, Html())
    routes = hybrid_routes(tmp_path / "hybrid", band_above=1.0, band_below=1.0)
    body = classify(serve_routes(routes, decider_settings(fake_llm, retries=0)), query=CONFIDENT)
    assert (body["route"], body["decided_by"], body["reason"], body["llm"]["outcome"]) == (
        "coding",
        "vote",
        "vote",
        "error",
    )


def test_only_real_answers_are_cached(tmp_path: Path, serve_routes: Any, fake_llm: FakeLLM) -> None:
    """A garbled answer (llm_unrecognised) or a proxy page is not remembered: once the endpoint
    recovers, the same question is asked again and its real answer is cached."""
    fake_llm.script(DECIDER, Reply("I would say it is maths"), Html())
    fake_llm.always(DECIDER, Reply('{"route": "maths"}'))
    url = serve_routes(llm_routes(tmp_path / "llm"), decider_settings(fake_llm, retries=0))
    answers = [classify(url, query="what is seven times six") for _ in range(4)]
    assert [a["reason"] for a in answers] == ["llm_unrecognised", "llm_failed", "llm", "llm"]
    assert [a["llm"].get("cached", False) for a in answers] == [False, False, False, True]
    assert len(fake_llm.calls(DECIDER)) == 3


# -- the rules, table-driven ---------------------------------------------------------------------
def _status_error(status: int, message: str) -> openai.APIStatusError:
    request = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    body = {"error": {"message": message}}
    response = httpx.Response(status, json=body, request=request)
    return openai.APIStatusError(f"Error code: {status} - {body}", response=response, body=body)


@pytest.mark.parametrize(
    ("status", "message", "refusal"),
    [
        (
            500,
            "1 validation error: {'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text'\"}",
            True,
        ),
        (400, "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.", True),
        (422, "json_schema is not supported", True),
        (400, "'response_format.type' must be 'json_schema' or 'text'", True),
        (500, "backend exploded", False),
        (400, "max_tokens is too large", False),
        (429, "rate limited while handling response_format", False),
        (401, "invalid key for response_format requests", False),
    ],
)
def test_what_counts_as_a_refusal_of_the_format(status: int, message: str, refusal: bool) -> None:
    """An HTTP error naming response_format, json_schema or json_object is a refusal of the format
    whatever its status, except statuses about something else (auth, rate limits...)."""
    assert refuses_format(_status_error(status, message)) is refusal


def test_a_learned_mode_lasts_its_ttl_and_never_climbs_back_early() -> None:
    """auto steps down the ladder and remembers it per endpoint for the TTL; a concurrent refusal
    of a better mode does not undo a further step; fixed settings never step down."""
    now = [0.0]
    modes = OutputModes("auto", ttl_s=60.0, clock=lambda: now[0])
    assert modes.mode_for("a") == "json_schema"
    assert modes.step_down("a", "json_schema", "HTTP 500") == "json_object"
    assert modes.step_down("a", "json_object", "HTTP 400") == "plain"
    assert modes.step_down("a", "json_schema", "HTTP 500") == "plain"  # a late refusal of the first probe
    assert modes.step_down("a", "plain", "HTTP 400") is None
    assert (modes.mode_for("a"), modes.mode_for("b")) == ("plain", "json_schema")
    now[0] = 59.0
    assert modes.mode_for("a") == "plain" and modes.status("a").reprobe_in_s == 1.0
    now[0] = 60.0
    assert modes.mode_for("a") == "json_schema" and modes.status("a").mode is None
    fixed = OutputModes("json_object", ttl_s=60.0)
    assert fixed.mode_for("a") == "json_object" and fixed.step_down("a", "json_object", "HTTP 500") is None
    assert OutputModes("off", ttl_s=60.0).mode_for("a") == "plain"
