"""The service on a Qdrant server: an outage is a 503 naming Qdrant, and it recovers by itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from devkit.serving import settings_for
from router_core import Embedder, load_routes, run_reindex
from router_core.settings import QdrantServerSettings
from router_core.store import QdrantStore
from tests.conftest import ServiceFactory
from tests.qdrant_http import QdrantHttpStandIn
from tests.test_qdrant_http import KEY, rest_client

QUERY = "What is 15% of 200?"


def wait_until_ok(http: httpx.Client, seconds: float) -> tuple[httpx.Response, httpx.Response]:
    """Poll classify and readyz until both answer 200 (or the time is up); the last responses."""
    deadline = time.monotonic() + seconds
    while True:
        classify = http.post("/v1/classify", json={"query": QUERY})
        ready = http.get("/readyz")
        if (classify.status_code, ready.status_code) == (200, 200) or time.monotonic() > deadline:
            return classify, ready
        time.sleep(0.1)


@pytest.fixture
def qdrant() -> Iterator[QdrantHttpStandIn]:
    """A running Qdrant API server requiring KEY (requested before start_service: outlives it)."""
    with QdrantHttpStandIn(api_key=KEY) as server:
        yield server


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_qdrant_outage_is_503_and_recovers_without_restart(
    tmp_path: Path,
    routes_dir: Path,
    embedder: Embedder,
    qdrant: QdrantHttpStandIn,
    start_service: ServiceFactory,
) -> None:
    """Qdrant down: classify and readyz are 503 naming Qdrant; Qdrant back: both 200 again."""
    writer = QdrantStore(rest_client(qdrant.url))
    report = run_reindex(load_routes(routes_dir), writer, embedder)
    writer.close()
    base = settings_for(routes_dir, tmp_path / "unused-embedded-dir")
    settings = base.model_copy(
        update={
            "index": base.index.model_copy(
                update={"qdrant": QdrantServerSettings(url=qdrant.url, api_key=SecretStr(KEY), timeout_s=2)}
            )
        }
    )
    with httpx.Client(base_url=start_service(settings), timeout=30) as http:
        before = http.post("/v1/classify", json={"query": QUERY})
        assert before.status_code == 200, before.text
        assert before.json()["index_version"] == report.version
        assert http.get("/readyz").status_code == 200

        qdrant.stop()
        down = http.post("/v1/classify", json={"query": QUERY})
        assert down.status_code == 503
        assert down.headers["content-type"].startswith("application/problem+json")
        problem = down.json()
        assert problem["status"] == 503
        assert "Qdrant" in problem["detail"] and "unavailable" in problem["title"].lower()
        not_ready = http.get("/readyz")
        assert not_ready.status_code == 503
        assert "Qdrant" in not_ready.json()["checks"]["error"]

        qdrant.start()
        after, ready = wait_until_ok(http, seconds=10)
        assert after.status_code == 200, after.text
        assert ready.status_code == 200, ready.text
        assert after.json()["route"] == before.json()["route"]
        assert after.json()["index_version"] == report.version
