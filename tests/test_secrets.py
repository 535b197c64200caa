"""Secrets never echoed: keys in upstream errors (masked before they are cut short), credentials
in base URLs, and settings errors that would print a key set under the wrong name."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from pydantic import ValidationError

from devkit.fake_llm import Fail, FakeLLM
from devkit.serving import ROOT
from router_core import Embedder
from router_core.agents import LLMAgent
from router_llm.clients import ClientRegistry
from router_llm.endpoints import Unavailable
from router_llm.failures import classify_failure
from router_llm.redaction import Redactor
from router_llm.settings import DeciderSettings, LLMSettings
from tests.llm_fixtures import fast_llm, router_service, write_routes

PLAIN_KEY_ENV = "PLAIN_TEST_API_KEY"
PLAIN_KEY = "Zq8vT4nWc2LrY7pKx9HsQ1mB3"  # 25 characters, no sk- prefix: only its value can match it
ECHO = " Incorrect API key provided: "
# The key starts 178 characters into the error text: a cut at 200 falls inside it.
PADDED = "upstream refused the request " + "x" * (178 - len(ECHO) - len("upstream refused the request "))


def windows(secret: str, width: int = 6) -> list[str]:
    """Every run of `width` characters of `secret`: none may appear anywhere."""
    return [secret[i : i + width] for i in range(len(secret) - width + 1)]


@pytest.fixture
def plain_key_service(
    tmp_path: Path, embedder: Embedder, fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A service with one LLM route whose key has no recognisable shape."""
    monkeypatch.setenv(PLAIN_KEY_ENV, PLAIN_KEY)
    url = fake_llm.url
    routes = write_routes(
        tmp_path / "routes",
        {"name": "router", "k": 3, "threshold": 0.5},
        {
            "weather": {
                "description": "Weather.",
                "examples": ["will it rain tomorrow", "weather forecast for london", "is it sunny today"],
                "agent": {
                    "kind": "llm",
                    "name": "weather-agent",
                    "model": "weather-main",
                    "retries": 0,
                    "base_url": url,
                    "api_key_env": PLAIN_KEY_ENV,
                },
            },
            "cooking": {
                "description": "Cooking.",
                "examples": ["recipe for pancakes", "how long do I boil an egg", "bake bread"],
                "agent": {"kind": "canned", "name": "cook", "reply": "ok"},
            },
        },
    )
    with router_service(routes, tmp_path / "data", embedder, fast_llm()) as served:
        yield served


def test_a_key_cut_by_the_length_limit_is_still_masked(
    plain_key_service: str, fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    """An upstream error longer than 200 characters with the key straddling the cut: no piece
    of the key reaches the response (`attempts[].error`) or the logs."""
    caplog.set_level(logging.DEBUG)
    fake_llm.always("weather-main", Fail(401, message=PADDED, echo_key=True))
    body = httpx.post(f"{plain_key_service}/v1/answer", json={"query": "will it rain tomorrow"}, timeout=30).json()
    [attempt] = body["attempts"]
    assert attempt["status"] == 401 and "Incorrect API key provided: ***" in attempt["error"]
    seen = [str(body)] + [r.getMessage() for r in caplog.records]
    assert [w for w in windows(PLAIN_KEY) for text in seen if w in text] == []


def test_failure_text_is_masked_before_it_is_cut() -> None:
    """classify_failure masks known keys (any shape) and Basic credentials, then shortens."""
    redact = Redactor()
    redact.add(PLAIN_KEY)
    request = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    for text in (PADDED + ECHO + PLAIN_KEY, PADDED + " Authorization: Basic dXNlcjpwYXNzd29yZA== refused"):
        response = httpx.Response(401, request=request, json={"error": {"message": text}})
        exc = openai.APIStatusError("refused", response=response, body={"error": {"message": text}})
        reason = classify_failure(exc, 1.0, redact).reason
        assert len(reason) <= len("HTTP 401: ") + 200
        assert not any(w in reason for w in windows(PLAIN_KEY))
        assert not any(w in reason for w in windows("dXNlcjpwYXNzd29yZA=="))


def test_credentials_in_base_urls_are_refused() -> None:
    """user:password@ in the default endpoint or the decision model's URL is a settings error
    that names the problem, not the value; in a route file's URL the agent is unavailable."""
    with pytest.raises(ValidationError, match="must not carry credentials"):
        LLMSettings(base_url="http://user:pw-Secret1@llm.local/v1")
    with pytest.raises(ValidationError, match="must not carry credentials"):
        DeciderSettings(model="m", base_url="https://user:pw-Secret1@llm.local/v1")
    registry = ClientRegistry(LLMSettings(), environ={})
    agent = LLMAgent(name="a", model="m", base_url="http://user:pw-Secret1@llm.local/v1")
    found = registry.lookup(agent)
    assert isinstance(found, Unavailable) and "must not carry credentials" in found.reason
    assert "pw-Secret1" not in found.reason and registry.endpoints == []


@pytest.mark.parametrize(
    ("command", "env"),
    [
        (["-m", "service"], {"ROUTER_LLM__API_KEY": "sk-live-Mixup0123456789abcdef"}),
        (["-m", "service"], {"ROUTER_AUTH__ADMIN_TOKN": "typo-token-0123456789"}),
        (["-m", "service"], {"ROUTER_LLM__BASE_URL": "http://user:Pw0123456789@llm.local/v1"}),
        (["-m", "indexer", "--dry-run"], {"ROUTER_INDEX__QDRANT__TIMEOUT_S": "Pw0123456789"}),
        (["-m", "indexer", "--dry-run"], {"ROUTER_EMBEDDING__MODLE": "sk-live-Mixup0123456789abcdef"}),
    ],
    ids=["key-under-wrong-name", "misspelt-setting", "credentials-in-url", "bad-value", "indexer-typo"],
)
@pytest.mark.slow
def test_settings_errors_name_the_variable_never_the_value(command: list[str], env: dict[str, str]) -> None:
    """Start-up with a bad setting exits 2 naming the variable and the problem; the value (it
    may be a key) appears nowhere in the output."""
    [(name, value)] = env.items()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    proc = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    output = proc.stdout + proc.stderr
    assert name in output and "Traceback" not in output
    secret = value.rsplit("@", 1)[0].rsplit(":", 1)[-1]
    assert not any(w in output for w in windows(secret))
