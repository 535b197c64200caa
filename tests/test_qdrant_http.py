"""QdrantStore over real HTTP, via qdrant-client's REST transport, against the stand-in server."""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from qdrant_client import QdrantClient
from qdrant_client.common.version_check import get_server_version, is_compatible

from router_core import StoreUnavailable
from router_core.store import QdrantStore
from tests.qdrant_http import QdrantHttpStandIn
from tests.test_store_contract import POINTS, VECTORS, manifest

KEY = "test-key-not-a-secret"


def rest_client(url: str, api_key: str | None = KEY, timeout: int = 5) -> QdrantClient:
    """qdrant-client on its REST transport (the key over plain HTTP is fine on loopback).

    The background version check is off: it could outlive a short test's server and warn;
    test_root_reports_a_compatible_version checks that answer directly.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Api key is used with an insecure connection")
        return QdrantClient(url=url, api_key=api_key, timeout=timeout, check_compatibility=False)


@pytest.fixture
def standin() -> Iterator[QdrantHttpStandIn]:
    """A running stand-in that requires KEY."""
    with QdrantHttpStandIn(api_key=KEY) as server:
        yield server


@pytest.fixture
def store(standin: QdrantHttpStandIn) -> Iterator[QdrantStore]:
    """A QdrantStore talking to the stand-in over HTTP."""
    s = QdrantStore(rest_client(standin.url))
    yield s
    s.close()


def test_store_round_trips_over_http(standin: QdrantHttpStandIn, store: QdrantStore) -> None:
    """write_version, activate, open_version and search work through the REST endpoints."""
    store.write_version(manifest("v1"), POINTS, VECTORS)
    store.activate("v1")
    assert store.live_version() == "v1"
    assert store.manifest("v1") == manifest("v1")
    index = store.open_version("v1")
    [hits] = index.searcher.search(VECTORS[2:3], 2)
    assert hits[0].text == "beta" and hits[0].route == "b"
    assert hits[0].similarity == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(store.stored_points("v1").vectors[2], VECTORS[2], atol=1e-6)
    seen = set(standin.requests)
    assert {
        "PUT /collections/router__v1",
        "PUT /collections/router__v1/points",
        "POST /collections/router__v1/points/count",
        "POST /collections/aliases",
        "GET /aliases",
        "GET /collections/router__v1",
        "POST /collections/router__v1/points/scroll",
        "POST /collections/router__v1/points/query/batch",
    } <= seen


def test_api_key_is_required_and_accepted(standin: QdrantHttpStandIn) -> None:
    """Without the key or with a wrong one Qdrant answers 401 (StoreUnavailable); the key works."""
    raw = httpx.get(f"{standin.url}/collections")
    assert raw.status_code == 401
    assert "API key" in raw.json()["status"]["error"]
    for key in (None, "wrong-key"):
        anonymous = QdrantStore(rest_client(standin.url, api_key=key))
        with pytest.raises(StoreUnavailable, match="401"):
            anonymous.versions()
        anonymous.close()
    keyed = QdrantStore(rest_client(standin.url))
    assert keyed.versions() == []
    keyed.close()
    assert httpx.get(f"{standin.url}/collections", headers={"api-key": KEY}).json()["result"] == {"collections": []}


def test_errors_use_qdrant_envelopes(standin: QdrantHttpStandIn) -> None:
    """An unknown collection is a 404 and a malformed body a 400, in Qdrant's error envelope."""
    with httpx.Client(base_url=standin.url, headers={"api-key": KEY}) as http:
        missing = http.get("/collections/nope")
        assert missing.status_code == 404
        assert "nope" in missing.json()["status"]["error"]
        bad = http.put("/collections/x", content=b'{"vectors": {"size": "four"}}')
        assert bad.status_code == 400
        assert "error" in bad.json()["status"]


def test_root_reports_a_compatible_version(standin: QdrantHttpStandIn) -> None:
    """GET / needs no key and names a server version qdrant-client's compatibility check accepts."""
    server_version = get_server_version(standin.url, {}, None, 5)
    assert server_version is not None
    assert is_compatible(importlib.metadata.version("qdrant-client"), server_version)


def test_stopped_server_is_store_unavailable_then_recovers(standin: QdrantHttpStandIn, store: QdrantStore) -> None:
    """Stopped Qdrant raises StoreUnavailable; start() on the same port serves the same data."""
    store.write_version(manifest("v1"), POINTS, VECTORS)
    store.activate("v1")
    index = store.open_version("v1")
    port = standin.port
    standin.stop()
    with pytest.raises(StoreUnavailable, match="Qdrant search failed"):
        index.searcher.search(VECTORS[:1], 1)
    with pytest.raises(StoreUnavailable):
        store.ping()
    standin.start()
    assert standin.port == port
    assert store.live_version() == "v1"
    [hits] = index.searcher.search(VECTORS[:1], 1)
    assert hits[0].text == "alpha"


@pytest.mark.slow
def test_injected_failures_and_slow_responses_are_store_unavailable(
    standin: QdrantHttpStandIn,
) -> None:
    """A 503 from Qdrant and a response slower than the client timeout become StoreUnavailable."""
    store = QdrantStore(rest_client(standin.url, timeout=1))
    standin.fail_next(1, status=503)
    with pytest.raises(StoreUnavailable, match="503"):
        store.versions()
    assert store.versions() == []
    standin.set_delay(1.5)
    with pytest.raises(StoreUnavailable, match="timed out"):
        store.versions()
    standin.set_delay(0)
    assert store.versions() == []
    store.close()
