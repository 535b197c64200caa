"""Helpers for tests of agents: the fake LLM, routes pointed at it, services serving them.

Import the fixtures you use into the test module (pytest finds them there).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from router_core import EdgeStore, Embedder, load_routes, run_reindex
from router_llm.settings import LLMSettings
from service.app import create_app
from service.services import Services
from tests.fake_llm import FakeLLM
from tests.serving import SHIPPED_ROUTES, serve, settings_for

USAGE_FAKE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
FAKE_KEY_ENV = "ROUTER_TEST_FAKE_LLM_KEY"
FAKE_KEY = "sk-test-Zq8vT4nWc2LrY7pKx9Hs"
UNSET_KEY_ENV = "ROUTER_TEST_UNSET_KEY"


def fast_llm(**overrides: Any) -> LLMSettings:
    """LLM settings with tiny backoffs and a default key variable that is never set."""
    base: dict[str, Any] = {
        "api_key_env": UNSET_KEY_ENV,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "backoff_jitter": 0.0,
    }
    return LLMSettings(**{**base, **overrides})


def point_agents_at(routes: Path, base_url: str, key_env: str = FAKE_KEY_ENV) -> None:
    """Make every LLM agent in a routes directory call `base_url` with the key in `key_env`."""
    for path in sorted(routes.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        agent = data.get("default_agent" if path.name == "_router.yaml" else "agent")
        if agent and agent.get("kind") == "llm":
            agent.update(base_url=base_url, api_key_env=key_env)
            path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def copy_shipped(target: Path) -> Path:
    """A private copy of the shipped routes."""
    shutil.copytree(SHIPPED_ROUTES, target)
    return target


def write_routes(target: Path, router: dict[str, Any], routes: dict[str, dict[str, Any]]) -> Path:
    """Write `_router.yaml` and one file per route."""
    target.mkdir(parents=True, exist_ok=True)
    (target / "_router.yaml").write_text(yaml.safe_dump(router, sort_keys=False), encoding="utf-8")
    for name, body in routes.items():
        text = yaml.safe_dump({"name": name, **body}, sort_keys=False)
        (target / f"{name}.yaml").write_text(text, encoding="utf-8")
    return target


@contextmanager
def router_service(routes: Path, data: Path, embedder: Embedder, llm: LLMSettings) -> Iterator[str]:
    """Index `routes` into `data` and serve them over HTTP on loopback; yields the base URL."""
    run_reindex(load_routes(routes), EdgeStore(data), embedder)
    runtime = Services.build(settings_for(routes, data, llm=llm), embedder=embedder)
    with serve(create_app(services=runtime)) as url:
        yield url


def sse_events(response: httpx.Response) -> list[tuple[str, Any]]:
    """(event, data) pairs of a complete server-sent event stream; data parsed as JSON."""
    events: list[tuple[str, Any]] = []
    for block in response.text.split("\n\n"):
        if not block.strip():
            continue
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        raw = "\n".join(data)
        events.append((name, raw if raw == "[DONE]" else json.loads(raw)))
    return events


@pytest.fixture(scope="module")
def fake_llm_server() -> Iterator[FakeLLM]:
    """The stand-in LLM server, shared by one test module."""
    with FakeLLM() as fake:
        yield fake


@pytest.fixture
def fake_llm(fake_llm_server: FakeLLM) -> Iterator[FakeLLM]:
    """The module's fake LLM, with no recorded requests and no scripts."""
    fake_llm_server.reset()
    yield fake_llm_server
    fake_llm_server.reset()


@pytest.fixture(scope="module")
def llm_env() -> Iterator[pytest.MonkeyPatch]:
    """Environment for a module's services: the fake key set, the unset key absent."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(FAKE_KEY_ENV, FAKE_KEY)
        mp.delenv(UNSET_KEY_ENV, raising=False)
        yield mp
