"""Live re-index under concurrent load: zero failed or mixed responses, no restart."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest

from bench.loadtest import EXTRA_ROUTES, QUERIES
from devkit.routes_dirs import add_route
from devkit.serving import settings_for
from router_core import Embedder, load_routes, run_reindex
from router_core.store import EdgeStore
from tests.conftest import ServiceFactory

CLIENTS, SECONDS = 8, 8.0


@pytest.mark.slow
def test_two_reindexes_under_load(
    tmp_path: Path, routes_dir: Path, embedder: Embedder, start_service: ServiceFactory
) -> None:
    """8 clients for 8 s while two re-indexes publish: every response is 200, names a published
    version, agrees with every other response of that version, and both new versions get served."""
    data = tmp_path / "data"
    published = [run_reindex(load_routes(routes_dir), EdgeStore(data), embedder).version]
    url = start_service(settings_for(routes_dir, data))

    def reindexes() -> None:
        for k, (name, examples) in enumerate(EXTRA_ROUTES[:2]):
            time.sleep(SECONDS / 3)
            add_route(routes_dir, name, examples)
            published.append(run_reindex(load_routes(routes_dir), EdgeStore(data), embedder).version)
            assert k < 2

    seen: dict[tuple[str, str], set[str]] = {}
    failures: list[str] = []

    async def client(i: int, http: httpx.AsyncClient, stop_at: float) -> int:
        n = 0
        while time.monotonic() < stop_at:
            query = QUERIES[(i + n) % len(QUERIES)]
            n += 1
            r = await http.post("/v1/classify", json={"query": query})
            if r.status_code != 200:
                failures.append(f"{r.status_code} {r.text[:200]}")
                continue
            body = r.json()
            seen.setdefault((body["index_version"], query), set()).add(body["route"])
        return n

    async def load() -> int:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            stop_at = time.monotonic() + SECONDS
            counts = await asyncio.gather(*(client(i, http, stop_at) for i in range(CLIENTS)))
        return sum(counts)

    writer = threading.Thread(target=reindexes)
    writer.start()
    total = asyncio.run(load())
    writer.join()
    versions = {v for v, _ in seen}
    assert total > 50
    assert failures == []
    assert versions <= set(published)
    assert versions == set(published), "every published version served some requests"
    mixed = {key: routes for key, routes in seen.items() if len(routes) > 1}
    assert mixed == {}
    # The new routes only exist in the later versions and are used by them.
    assert seen[(published[2], QUERIES[7])] == {"dining"}
    assert seen[(published[0], QUERIES[7])] == {"default"}
