"""Route sets do not get in each other's way: one re-indexes while the other serves under load,
a busy set does not hold up another's queries, and the sets share one loaded model."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from bench.loadtest import QUERIES
from devkit.routes_dirs import add_route, index_route_sets, shipped_sets
from devkit.service_process import service_process
from devkit.serving import settings_for
from router_core import Embedder, EmbeddingSettings, IndexSettings
from service.models import ModelRegistry
from service.routing.batching import MicroBatcher
from service.services import Services
from tests.conftest import ServiceFactory
from tests.test_fairness import long_queries
from tests.test_route_sets import RUST, two_sets

CLIENTS, SECONDS = 6, 6.0


def test_sets_sharing_a_worker_take_turns_pass_by_pass() -> None:
    """Two batchers on one worker thread: a query of the second, submitted while the first runs
    the first of its many passes, runs in the very next pass, not after the first's backlog."""
    passes: list[str] = []

    def work(name: str) -> object:
        def run(items: list[str]) -> list[str]:
            passes.append(name)
            time.sleep(0.02)
            return items

        return run

    async def scenario() -> None:
        worker = ThreadPoolExecutor(max_workers=1)
        busy: MicroBatcher[str, str] = MicroBatcher(work("busy"), 4, executor=worker)  # type: ignore[arg-type]
        quiet: MicroBatcher[str, str] = MicroBatcher(work("quiet"), 4, executor=worker)  # type: ignore[arg-type]
        busy.start()
        quiet.start()
        try:
            flood = asyncio.ensure_future(busy.submit([f"q{i}" for i in range(40)]))  # 10 passes of 4
            while not passes:
                await asyncio.sleep(0.001)
            assert await quiet.submit(["one"]) == ["one"]
            assert len(await flood) == 40
        finally:
            await busy.stop()
            await quiet.stop()
            worker.shutdown()

    asyncio.run(scenario())
    assert passes[:2] == ["busy", "quiet"] and passes.count("busy") == 10


def test_two_sets_share_one_loaded_model(tmp_path: Path, embedder: Embedder) -> None:
    """Building the services of two sets asks the model registry once: both sets' stages embed
    with the same model object."""
    settings = settings_for(two_sets(tmp_path / "routes"), tmp_path / "data")
    index_route_sets(settings, embedder)
    loads: list[str | None] = []

    def load(emb: EmbeddingSettings, index: IndexSettings, model: str | None) -> Embedder:
        loads.append(model)
        return embedder

    services = Services.build(settings, models=ModelRegistry(load))
    try:
        alpha, beta = (services.sets.serving[name].follower.embedder for name in ("alpha", "beta"))
        assert alpha is beta and len(loads) == 1 and services.models.loads == 1
    finally:
        for route_set in services.sets.serving.values():
            route_set.follower.close()
            route_set.store.close()
        services.passes.shutdown()


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        line = next(line for line in fh if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


MODEL_COST = """
import sys
from router_core import load_embedder
def rss():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS:")).split()[1]) / 1024
import onnxruntime, qdrant_edge, litestar  # the service's imports, before the model
before = rss()
load_embedder().encode_queries(["warm up"])
print(rss() - before)
"""


@pytest.mark.slow
def test_two_sets_in_one_process_cost_one_model(tmp_path: Path, embedder: Embedder) -> None:
    """RSS of a service serving one set and of one serving two (each after routing a query on
    every set): the second set costs less than loading the model once more would (what loading
    the model costs in a fresh process, measured in the same test); a second copy of the model
    would cost that on top of the set's own index."""
    one = settings_for(shipped_sets(tmp_path / "one", ["alpha"]), tmp_path / "data-one")
    two = settings_for(two_sets(tmp_path / "two"), tmp_path / "data-two")
    rss: dict[int, float] = {}
    for count, settings in ((1, one), (2, two)):
        index_route_sets(settings, embedder)
        env = {"ROUTER_ROUTES_DIR": str(settings.routes_dir), "ROUTER_INDEX__DATA_DIR": str(settings.index.data_dir)}
        with service_process(env) as service, httpx.Client(base_url=service.url, timeout=60) as c:
            for name in ("alpha", "beta")[:count]:
                assert c.post(f"/v1/sets/{name}/classify", json={"query": RUST}).status_code == 200
            rss[count] = _rss_mb(service.proc.pid)
    # a fresh process's RSS growth is noisy (36-90 MB measured for the same code, ~60 MB most
    # often: allocator arenas, what the imports already touched): the largest of three
    model_mb = max(
        float(
            subprocess.run(
                [sys.executable, "-c", MODEL_COST], capture_output=True, text=True, check=True, env=os.environ
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        for _ in range(3)
    )
    print(f"RSS: 1 set {rss[1]:.0f} MB, 2 sets {rss[2]:.0f} MB; the model alone {model_mb:.0f} MB")
    assert model_mb > 50  # the measurement measured something
    assert rss[2] - rss[1] < model_mb


@pytest.mark.slow
def test_one_set_reindexes_while_the_other_serves_under_load(
    tmp_path: Path, embedder: Embedder, start_service: ServiceFactory
) -> None:
    """6 clients on both sets for 6 s while alpha is re-indexed twice through the admin endpoint:
    every response is 200, beta stays on its version, alpha serves each version it published,
    and no (version, query) is routed two ways."""
    settings = settings_for(two_sets(tmp_path / "routes"), tmp_path / "data")
    index_route_sets(settings, embedder)
    url = start_service(settings)
    alpha_dir = settings.routes_dir / "alpha"
    with httpx.Client(base_url=url, timeout=60) as c:
        published = {"alpha": [c.get("/admin/index", params={"set": "alpha"}).json()["version"]]}
        beta_version = c.get("/admin/index", params={"set": "beta"}).json()["version"]

    def reindexes() -> None:
        with httpx.Client(base_url=url, timeout=120) as admin:
            for k in range(2):
                time.sleep(SECONDS / 3)
                add_route(alpha_dir, f"extra{k}", [f"isolation example {k} {i}" for i in range(5)])
                r = admin.post("/admin/reindex", params={"set": "alpha"})
                assert r.status_code == 200 and r.json()["changed"], r.text
                published["alpha"].append(r.json()["version"])

    seen: dict[tuple[str, str, str], set[str]] = {}
    failures: list[str] = []

    async def client(i: int, http: httpx.AsyncClient, stop_at: float) -> None:
        n = 0
        while time.monotonic() < stop_at:
            name, query = ("alpha", "beta")[(i + n) % 2], QUERIES[(i + n) % len(QUERIES)]
            n += 1
            r = await http.post(f"/v1/sets/{name}/classify", json={"query": query})
            if r.status_code != 200:
                failures.append(f"{name}: {r.status_code} {r.text[:200]}")
                continue
            body = r.json()
            seen.setdefault((name, body["index_version"], query), set()).add(body["route"])

    async def load() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            stop_at = time.monotonic() + SECONDS
            await asyncio.gather(*(client(i, http, stop_at) for i in range(CLIENTS)))

    writer = threading.Thread(target=reindexes)
    writer.start()
    asyncio.run(load())
    writer.join()
    assert failures == []
    assert len(seen) > 20
    assert {v for s, v, _ in seen if s == "beta"} == {beta_version}
    assert {v for s, v, _ in seen if s == "alpha"} == set(published["alpha"]) and len(published["alpha"]) == 3
    assert {key: routes for key, routes in seen.items() if len(routes) > 1} == {}


@pytest.mark.slow
def test_a_busy_set_does_not_hold_up_another(tmp_path: Path, embedder: Embedder, start_service: ServiceFactory) -> None:
    """Two batches of 32 queries of 2,000 characters flood alpha; a query to beta sent once the
    first pass is done is answered before either batch is."""
    settings = settings_for(two_sets(tmp_path / "routes"), tmp_path / "data")
    index_route_sets(settings, embedder)
    url = start_service(settings)
    done: dict[str, float] = {}
    seed = random.randrange(1_000_000)  # texts this process has never embedded

    def send(http: httpx.Client, name: str, texts: list[str]) -> None:
        r = http.post("/v1/sets/alpha/classify/batch", json={"queries": texts}, timeout=600)
        assert r.status_code == 200
        done[name] = time.monotonic()

    with httpx.Client(base_url=url, timeout=600) as c:
        threads = [threading.Thread(target=send, args=(c, f"b{i}", long_queries(32, seed + i))) for i in range(2)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 600
        while 'route_set="alpha",stage="embed"' not in c.get("/metrics").text:
            assert time.monotonic() < deadline, "no forward pass finished"
            time.sleep(0.02)
        r = c.post("/v1/sets/beta/classify", json={"query": f"What is 15% of 200? (ticket {seed})"})
        answered = time.monotonic()
        for t in threads:
            t.join(timeout=600)
    assert r.status_code == 200 and r.json()["route"] == "coding"  # beta's maths examples are coding's
    assert len(done) == 2 and answered < min(done.values()), "the beta query waited for alpha's batches"
