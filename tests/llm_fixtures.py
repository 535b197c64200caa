"""Helpers for tests of agents: the fake LLM, routes pointed at it, services serving them.

Import the fixtures you use into the test module (pytest finds them there).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from devkit.fake_llm import FakeLLM
from devkit.routes_dirs import FAKE_KEY, FAKE_KEY_ENV, copy_shipped, point_agents_at, write_routes
from devkit.serving import serve, settings_for
from router_core import Embedder, load_routes, run_reindex
from router_core.store import EdgeStore
from router_llm.settings import DeciderSettings, LLMSettings
from service.app import create_app
from service.services import Services

__all__ = ["FAKE_KEY", "FAKE_KEY_ENV", "copy_shipped", "point_agents_at", "write_routes"]

USAGE_FAKE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
UNSET_KEY_ENV = "UNSET_TEST_API_KEY"


def fast_llm(**overrides: Any) -> LLMSettings:
    """LLM settings with tiny backoffs and a default key variable that is never set."""
    base: dict[str, Any] = {
        "api_key_env": UNSET_KEY_ENV,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "backoff_jitter": 0.0,
    }
    return LLMSettings(**{**base, **overrides})


@contextmanager
def router_service(routes: Path, data: Path, embedder: Embedder, llm: LLMSettings) -> Iterator[str]:
    """Index `routes` into `data` and serve them over HTTP on loopback; yields the base URL."""
    run_reindex(load_routes(routes), EdgeStore(data), embedder)
    runtime = Services.build(settings_for(routes, data, llm=llm), embedder=embedder)
    with serve(create_app(services=runtime)) as url:
        yield url


@contextmanager
def shipped_router(root: Path, embedder: Embedder, fake: FakeLLM) -> Iterator[str]:
    """A service over a copy of the shipped routes in `root`, their LLM agents pointed at
    `fake`; yields the base URL."""
    routes = copy_shipped(root / "routes")
    point_agents_at(routes, fake.url)
    with router_service(routes, root / "data", embedder, fast_llm()) as url:
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


@pytest.fixture
def serve_routes(tmp_path: Path, embedder: Embedder, start_service: Any, llm_env: pytest.MonkeyPatch) -> Any:
    """Index a routes directory and serve it with a decision model; returns a starter."""

    def start(routes: Path, decider: DeciderSettings) -> str:
        data = tmp_path / f"data-{routes.name}"
        run_reindex(load_routes(routes), EdgeStore(data), embedder)
        url: str = start_service(settings_for(routes, data, decider=decider))
        return url

    return start


@pytest.fixture(scope="module")
def llm_env() -> Iterator[pytest.MonkeyPatch]:
    """Environment for a module's services: the fake key set, the unset key absent."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(FAKE_KEY_ENV, FAKE_KEY)
        mp.delenv(UNSET_KEY_ENV, raising=False)
        yield mp
