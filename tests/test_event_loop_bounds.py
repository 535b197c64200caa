"""No single request stalls the service: hostile inputs that used to hold the event loop for
seconds (blanks around a query, an upstream error text that backtracked the key masking) end in
milliseconds, and /healthz keeps answering within 100 ms while they are in flight."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from devkit.fake_llm import Fail, FakeLLM
from devkit.routes_dirs import FAKE_KEY_ENV, copy_shipped, point_agents_at
from devkit.serving import settings_for
from router_core import Embedder, load_routes, run_reindex
from router_core.store import EdgeStore
from router_llm.settings import DeciderSettings
from tests.conftest import ServiceFactory
from tests.llm_fixtures import fast_llm

HEALTHZ_BOUND_S = 0.1  # what the issue asks of /healthz while a hostile request runs
HOSTILE_BOUND_S = 1.0  # "ends in milliseconds", with room for a loaded 2-core machine
CLIENT_TIMEOUT_S = 10.0  # before the fix these requests took 2-100 s: fail instead of waiting


@dataclass
class Probe:
    """What happened while hostile requests ran: their statuses and durations, and /healthz's."""

    statuses: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    healthz: list[float] = field(default_factory=list)


def probe(url: str, hostile: list[Callable[[httpx.Client], httpx.Response]], rounds: int = 3) -> Probe:
    """Send every hostile request `rounds` times from a thread, one after the other, while
    /healthz is asked again and again from this one until the hostile ones are done."""
    found = Probe()

    def send() -> None:
        with httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT_S) as c:
            for _ in range(rounds):
                for request in hostile:
                    started = time.perf_counter()
                    try:
                        found.statuses.append(request(c).status_code)
                    except httpx.TimeoutException:
                        found.statuses.append(0)
                    found.seconds.append(time.perf_counter() - started)

    sender = threading.Thread(target=send)
    with httpx.Client(base_url=url, timeout=60) as c:
        assert c.get("/healthz").status_code == 200  # connection open before the hostile ones start
        sender.start()
        while sender.is_alive():
            started = time.perf_counter()
            assert c.get("/healthz").status_code == 200
            found.healthz.append(time.perf_counter() - started)
            time.sleep(0.005)
    sender.join()
    return found


def assert_unstalled(found: Probe, expected: set[int], bound_s: float = HOSTILE_BOUND_S) -> None:
    """Every hostile request answered as expected within `bound_s`, and /healthz within
    100 ms while they ran (at the 90th percentile, so one scheduling hiccup of a loaded machine
    does not fail it, and never over 0.5 s)."""
    assert set(found.statuses) <= expected, found.statuses
    assert max(found.seconds) < bound_s, [round(s, 3) for s in found.seconds]
    assert found.healthz, "no /healthz answered while the hostile requests ran"
    ordered = sorted(found.healthz)
    assert ordered[int(len(ordered) * 0.9)] < HEALTHZ_BOUND_S, [round(s, 3) for s in ordered[-5:]]
    assert ordered[-1] < 0.5, [round(s, 3) for s in ordered[-5:]]


def padded(n: int) -> str:
    """Two letters with `n` blanks between them."""
    return "x" + " " * n + "x"


def chat(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


# -- item 1: blanks around a query -------------------------------------------------------------
def test_blanks_between_words_end_in_milliseconds_on_every_endpoint(client: httpx.Client) -> None:
    """30,000 blanks between two letters in a query, a batch, a message (60,000) of classify,
    answer and chat completions: each answered (400 for the query, too long; the messages are
    routed on their first 2,000 characters) in milliseconds, /healthz meanwhile within 100 ms."""
    hostile: list[Callable[[httpx.Client], httpx.Response]] = [
        lambda c: c.post("/v1/classify", json={"query": padded(30_000)}),
        lambda c: c.post("/v1/classify/batch", json={"queries": [padded(30_000)] * 3}),
        lambda c: c.post("/v1/classify", json={"messages": chat(padded(60_000))}),
        lambda c: c.post("/v1/classify/batch", json={"conversations": [{"messages": chat(padded(60_000))}]}),
        lambda c: c.post("/v1/answer", json={"query": padded(30_000)}),
        lambda c: c.post("/v1/answer", json={"messages": chat(padded(60_000))}),
        lambda c: c.post("/v1/chat/completions", json={"model": "router", "messages": chat(padded(60_000))}),
    ]
    found = probe(str(client.base_url), hostile)
    assert_unstalled(found, {200, 400})
    # the routed message is still its words, not its blanks
    r = client.post("/v1/classify", json={"messages": chat("What is 15% of 200?" + " " * 60_000 + "!")})
    assert r.status_code == 200 and r.json()["route"] == "maths"


# -- item 2: upstream error texts --------------------------------------------------------------
HOSTILE_ERROR = "a." * 30_000


@pytest.fixture
def failing_upstream(
    tmp_path: Path,
    embedder: Embedder,
    start_service: ServiceFactory,
    fake_llm: FakeLLM,
    llm_env: pytest.MonkeyPatch,
) -> str:
    """The shipped routes with every agent and the hybrid decision model on the fake LLM, which
    answers every call with a 500 whose message is "a." * 30,000."""
    routes = copy_shipped(tmp_path / "routes")
    point_agents_at(routes, fake_llm.url)
    data = tmp_path / "data"
    run_reindex(load_routes(routes), EdgeStore(data), embedder)
    fake_llm.always("gpt-4o-mini", Fail(500, HOSTILE_ERROR))
    fake_llm.always("decision-model", Fail(500, HOSTILE_ERROR))
    decider = DeciderSettings(model="decision-model", base_url=fake_llm.url, api_key_env=FAKE_KEY_ENV)
    return start_service(settings_for(routes, data, llm=fast_llm(), decider=decider))


def test_an_upstream_error_of_a_dot_a_dot_ends_in_milliseconds(failing_upstream: str, fake_llm: FakeLLM) -> None:
    """An agent answering 500 with "a." * 30,000 as its message (retried, then the default
    agent): the answer ends in milliseconds with the error shortened, /healthz meanwhile within
    100 ms."""
    hostile: list[Callable[[httpx.Client], httpx.Response]] = [
        lambda c: c.post("/v1/answer", json={"query": "What is 15% of 200?"}),
        lambda c: c.post("/v1/chat/completions", json={"model": "router", "messages": chat("What is 15% of 200?")}),
    ]
    found = probe(failing_upstream, hostile)
    assert_unstalled(found, {200})
    with httpx.Client(base_url=failing_upstream, timeout=CLIENT_TIMEOUT_S) as c:
        body = c.post("/v1/answer", json={"query": "What is 15% of 200?"}).json()
    assert body["answered_by"] == "default-agent"
    assert all(
        len(a["error"]) <= len("HTTP 500: ") + 200 and a["error"].startswith("HTTP 500: a.a.a.")
        for a in body["attempts"]
    )
    assert fake_llm.calls("gpt-4o-mini"), "the agent was never called"


@pytest.mark.slow
def test_a_decision_model_error_of_a_dot_a_dot_keeps_its_deadline(
    tmp_path: Path,
    embedder: Embedder,
    start_service: ServiceFactory,
    fake_llm: FakeLLM,
    llm_env: pytest.MonkeyPatch,
) -> None:
    """Mode llm, the decision model answering 500 with "a." * 30,000: the default route
    (llm_failed) well within the decision deadline, /healthz meanwhile within 100 ms."""
    routes = copy_shipped(tmp_path / "routes")
    router_file = routes / "_router.yaml"
    router_file.write_text(router_file.read_text(encoding="utf-8") + "mode: llm\n", encoding="utf-8")
    data = tmp_path / "data"
    run_reindex(load_routes(routes), EdgeStore(data), embedder)
    fake_llm.always("decision-model", Fail(500, HOSTILE_ERROR))
    decider = DeciderSettings(model="decision-model", base_url=fake_llm.url, api_key_env=FAKE_KEY_ENV)
    url = start_service(settings_for(routes, data, decider=decider))

    def classify(query: str) -> Callable[[httpx.Client], httpx.Response]:
        return lambda c: c.post("/v1/classify", json={"query": query})

    hostile = [classify(f"what is {i} percent of 300") for i in range(3)]  # distinct: no cached decision
    found = probe(url, hostile, rounds=1)
    # The call itself may take the decision deadline (retries included); masking must add ~nothing.
    assert_unstalled(found, {200}, bound_s=decider.timeout_s + HOSTILE_BOUND_S)
    with httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT_S) as c:
        body: dict[str, Any] = c.post("/v1/classify", json={"query": "what is 3 percent of 300"}).json()
    assert (body["route"], body["reason"]) == ("default", "llm_failed")
    assert len(body["llm"]["detail"]) <= len("HTTP 500: ") + 200
