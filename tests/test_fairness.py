"""Fair sharing: the rate limit counts queries, and single queries are not held up behind other
callers' big batches."""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time
from pathlib import Path

import httpx
import pytest

from devkit.serving import settings_for
from router_core import Embedder, load_routes, run_reindex
from router_core.store import EdgeStore
from service.routing.batching import MicroBatcher, Unit
from service.security import AuthSettings
from tests.conftest import ServiceFactory

WORDS = ["invoice", "rust", "borrow", "checker", "percentage", "quota", "discount", "deploy", "kubernetes", "pipeline"]


def long_queries(n: int, seed: int, chars: int = 2000) -> list[str]:
    """`n` texts of `chars` characters never seen before (each one must be embedded)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = [f"case {seed}-{i}:"]
        while sum(len(w) + 1 for w in words) < chars:
            words.append(rng.choice(WORDS))
        out.append(" ".join(words)[:chars])
    return out


def test_rate_limit_counts_the_queries_of_a_batch(
    tmp_path: Path, routes_dir: Path, embedder: Embedder, start_service: ServiceFactory
) -> None:
    """With 10 queries a minute, two batches of 8 go through (the second on credit) and the
    caller then waits: a batch is not one request's worth of work."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    url = start_service(settings_for(routes_dir, data, auth=AuthSettings(rate_per_minute=10)))
    batch = {"queries": [f"what is {i} percent of 200" for i in range(8)]}
    with httpx.Client(base_url=url, timeout=60) as c:
        assert c.post("/v1/classify/batch", json=batch).status_code == 200
        assert c.post("/v1/classify/batch", json=batch).status_code == 200
        limited = c.post("/v1/classify", json={"query": "What is 15% of 200?"})
        assert limited.status_code == 429 and "queries per minute" in limited.json()["detail"]
        assert int(limited.headers["retry-after"]) >= 30  # seven queries of debt at one per 6 s


def test_a_pass_is_lone_only_when_one_callers_work_waited() -> None:
    """`lone_pass`, read by the work on the worker thread (the stage then lets a small encode use
    the other core): true for a caller alone, false for a pass planned with others waiting."""
    seen: list[tuple[list[str], bool]] = []
    started, release = threading.Event(), threading.Event()

    async def scenario() -> None:
        def work(items: list[str]) -> list[str]:
            seen.append((items, batcher.lone_pass))
            if items == ["first"]:
                started.set()
                release.wait(10)
            return items

        batcher: MicroBatcher[str, str] = MicroBatcher(work, 1)
        batcher.start()
        try:
            await batcher.submit(["alone"])
            first = asyncio.ensure_future(batcher.submit(["first"]))
            await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
            second = asyncio.ensure_future(batcher.submit(["second"]))
            third = asyncio.ensure_future(batcher.submit(["third"]))
            await asyncio.sleep(0.05)  # both queued while "first" runs
            release.set()
            await asyncio.gather(first, second, third)
        finally:
            await batcher.stop()

    asyncio.run(scenario())
    assert seen[:2] == [(["alone"], True), (["first"], True)]
    assert (["second"], False) in seen[2:]  # planned with "third" waiting (one unit per pass)
    assert (["third"], True) in seen[2:]  # the last, alone again


def test_a_pass_takes_a_single_query_ahead_of_big_batches() -> None:
    """Two batches of 32 long texts queued before one short query: the query rides in the first
    pass, each pass stays within the character budget, every caller gets its own results in order."""
    passes: list[list[str]] = []

    def work(items: list[str]) -> list[str]:
        passes.append(items)
        return [t.upper() for t in items]

    async def scenario() -> tuple[list[str], list[str], list[str]]:
        batcher: MicroBatcher[str, str] = MicroBatcher(work, 64, cost=len, max_cost=16_000)
        batcher.start()
        try:
            big1 = asyncio.ensure_future(batcher.submit(long_queries(32, 1)))
            big2 = asyncio.ensure_future(batcher.submit(long_queries(32, 2)))
            single = asyncio.ensure_future(batcher.submit(["what is 15% of 200"]))
            return await big1, await big2, await single
        finally:
            await batcher.stop()

    big1, big2, single = asyncio.run(scenario())
    assert single == ["WHAT IS 15% OF 200"]
    assert big1 == [t.upper() for t in long_queries(32, 1)] and big2 == [t.upper() for t in long_queries(32, 2)]
    assert "what is 15% of 200" in passes[0]
    assert all(sum(len(t) for t in p) <= 16_000 for p in passes)
    assert len(passes) >= 8  # 64 texts of 2,000 characters, at most 8 per pass


@pytest.mark.slow
def test_a_plain_classify_is_answered_while_big_batches_are_still_running(client: httpx.Client) -> None:
    """Over HTTP: two batches of 32 queries of 2,000 characters are sent at once; a plain
    classify sent once the first forward pass is done is answered before either batch is."""
    done: dict[str, float] = {}

    def send(name: str, seed: int) -> None:
        r = client.post("/v1/classify/batch", json={"queries": long_queries(32, seed)}, timeout=600)
        assert r.status_code == 200
        done[name] = time.monotonic()

    def passes_so_far() -> float:
        found = re.search(
            r'router_classify_stage_seconds_count\{route_set="default",stage="embed"\} ([0-9.e+]+)',
            client.get("/metrics").text,
        )
        return float(found.group(1)) if found else 0.0

    before = passes_so_far()
    seed = random.randrange(1_000_000)  # texts this process has never embedded
    threads = [threading.Thread(target=send, args=(f"batch{i}", seed + i)) for i in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 600
    while passes_so_far() == before:
        assert time.monotonic() < deadline, "no forward pass finished"
        time.sleep(0.02)
    r = client.post("/v1/classify", json={"query": f"What is 15% of 200? (ticket {seed})"}, timeout=600)
    answered = time.monotonic()
    assert r.status_code == 200 and r.json()["route"] == "maths"
    for t in threads:
        t.join(timeout=600)
    assert len(done) == 2
    assert answered < min(done.values()), "the plain query waited for a whole batch"


def test_units_of_preparation_are_planned_but_not_returned() -> None:
    """An item split into units (texts embedded ahead of a conversation) is spread across passes
    within the budget; the caller gets one result per item, in order; a single query still rides
    in the first pass."""
    passes: list[list[str]] = []

    def work(items: list[str]) -> list[str]:
        passes.append(items)
        return [t.upper() for t in items]

    def units(item: str) -> list[Unit[str]]:
        if not item.startswith("chat"):
            return [Unit(item, len(item))]
        return [*(Unit(f"{item}/text{i}", 2000, keep=False) for i in range(10)), Unit(item, 10)]

    async def scenario() -> tuple[list[str], list[str]]:
        batcher: MicroBatcher[str, str] = MicroBatcher(work, 64, units=units, max_cost=16_000)
        batcher.start()
        try:
            chats = asyncio.ensure_future(batcher.submit(["chat-a", "chat-b", "chat-c"]))
            single = asyncio.ensure_future(batcher.submit(["what is 15% of 200"]))
            return await chats, await single
        finally:
            await batcher.stop()

    chats, single = asyncio.run(scenario())
    assert chats == ["CHAT-A", "CHAT-B", "CHAT-C"] and single == ["WHAT IS 15% OF 200"]
    assert "what is 15% of 200" in passes[0]
    assert len(passes) >= 4  # 30 texts of 2,000 characters, at most 8 per pass
    for p in passes:
        assert sum(2000 if "/text" in t else len(t) for t in p) <= 16_000


def test_a_cancelled_caller_is_dropped_from_later_passes() -> None:
    """A caller cancelled while its big batch is being worked through (its client has gone):
    only the pass already running finishes; none of its later units is worked on."""
    passes: list[list[str]] = []
    running = threading.Event()

    def work(items: list[str]) -> list[str]:
        passes.append(items)
        running.set()
        time.sleep(0.05)
        return items

    async def scenario() -> None:
        batcher: MicroBatcher[str, str] = MicroBatcher(work, 64, cost=len, max_cost=16_000)
        batcher.start()
        try:
            big = asyncio.ensure_future(batcher.submit(long_queries(64, 7)))
            while not running.is_set():
                await asyncio.sleep(0.005)
            big.cancel()
            await asyncio.sleep(0.5)
            assert await batcher.submit(["after"]) == ["after"]
        finally:
            await batcher.stop()

    asyncio.run(scenario())
    assert len(passes) == 2 and passes[-1] == ["after"]  # the pass that was running, then "after"
