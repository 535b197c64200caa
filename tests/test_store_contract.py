"""One contract, every backend: the embedded Qdrant Edge store (its vectors scanned in memory, the
default, and searched by the engine), qdrant-client in its `:memory:` mode, and qdrant-client
over real HTTP (REST) against a Qdrant API server on loopback."""

from __future__ import annotations

import mmap
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient

from devkit.serving import SHIPPED_ROUTES
from router_core import Embedder, IndexMissing, IndexStore, Router, StoreUnavailable, load_routes, run_reindex
from router_core.follow_ups import FOLLOW_UP_ROUTE
from router_core.manifest import ExamplePoint, IndexManifest
from router_core.replies import REPLY_ROUTE, Reply
from router_core.store import EdgeStore, QdrantStore
from tests.qdrant_http import QdrantHttpStandIn

HTTP_KEY = "contract-key-not-a-secret"


def http_store(server: QdrantHttpStandIn) -> QdrantStore:
    """QdrantStore on qdrant-client's REST transport, sending the server's API key."""
    with warnings.catch_warnings():  # a key over plain HTTP is fine on loopback
        warnings.filterwarnings("ignore", "Api key is used with an insecure connection")
        # no background version check: it could outlive a short test's server and warn
        return QdrantStore(QdrantClient(url=server.url, api_key=HTTP_KEY, timeout=10, check_compatibility=False))


@pytest.fixture(params=["edge", "edge-engine", "qdrant-client", "qdrant-http"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IndexStore]:
    """Each backend the product ships."""
    if request.param == "edge":
        s: IndexStore = EdgeStore(tmp_path / "data")
    elif request.param == "edge-engine":
        s = EdgeStore(tmp_path / "data", scan="engine")
    elif request.param == "qdrant-client":
        s = QdrantStore(QdrantClient(":memory:"))
    else:
        with QdrantHttpStandIn(api_key=HTTP_KEY) as server:
            s = http_store(server)
            yield s
            s.close()
        return
    yield s
    s.close()


def manifest(version: str, dim: int = 4) -> IndexManifest:
    table = {
        "name": "r",
        "k": 2,
        "threshold": 0.1,
        "default_route": "default",
        "default_agent": {"kind": "canned", "name": "d", "reply": "no"},
        "routes": [
            {
                "name": "a",
                "description": "a",
                "threshold": None,
                "examples": 2,
                "agent": {"kind": "canned", "name": "a", "reply": "A"},
            },
            {
                "name": "b",
                "description": "b",
                "threshold": None,
                "examples": 1,
                "agent": {"kind": "canned", "name": "b", "reply": "B"},
            },
        ],
    }
    return IndexManifest(version, "2026-01-01T00:00:00+00:00", "m", dim, "fp", 3, table)


POINTS = (
    ExamplePoint("00000000-0000-0000-0000-000000000001", "a", "alpha"),
    ExamplePoint("00000000-0000-0000-0000-000000000002", "a", "alpha two"),
    ExamplePoint("00000000-0000-0000-0000-000000000003", "b", "beta"),
)
VECTORS = np.array([[1, 0, 0, 0], [0.9, 0.1, 0, 0], [0, 1, 0, 0]], dtype=np.float32)
VECTORS /= np.linalg.norm(VECTORS, axis=1, keepdims=True)


def test_empty_store_has_no_live_version(store: IndexStore) -> None:
    """A fresh store has no live version and no versions."""
    assert store.live_version() is None
    assert store.versions() == []
    with pytest.raises(IndexMissing):
        store.manifest("v1")


def test_written_version_is_not_live_until_activated(store: IndexStore) -> None:
    """write_version publishes nothing; activate switches the live pointer."""
    store.write_version(manifest("v1"), POINTS, VECTORS)
    assert store.versions() == ["v1"]
    assert store.live_version() is None
    store.activate("v1")
    assert store.live_version() == "v1"


def test_manifest_and_points_round_trip(store: IndexStore) -> None:
    """The manifest and the points with their vectors come back as written."""
    store.write_version(manifest("v1"), POINTS, VECTORS)
    assert store.manifest("v1") == manifest("v1")
    stored = store.stored_points("v1")
    rows = stored.by_id()
    assert set(rows) == {p.id for p in POINTS}
    for i, p in enumerate(POINTS):
        assert stored.points[rows[p.id]] == p
        np.testing.assert_allclose(stored.vectors[rows[p.id]], VECTORS[i], atol=1e-6)


def test_search_returns_nearest_with_cosine_similarity(store: IndexStore) -> None:
    """Searching an opened version returns the k nearest examples, most similar first."""
    store.write_version(manifest("v1"), POINTS, VECTORS)
    index = store.open_version("v1")
    try:
        [hits] = index.searcher.search(VECTORS[:1], 2)
        assert [h.text for h in hits] == ["alpha", "alpha two"]
        assert hits[0].similarity == pytest.approx(1.0, abs=1e-5)
        assert hits[1].similarity == pytest.approx(float(VECTORS[0] @ VECTORS[1]), abs=1e-5)
        assert {r.name for r in index.table.routes} == {"a", "b"}
        assert index.table.get("a").examples == ("alpha", "alpha two")  # type: ignore[union-attr]
    finally:
        index.close()


def test_vectors_of_any_length_are_searched_by_cosine(store: IndexStore) -> None:
    """Stored and query vectors that are not unit length score their cosine, as the engine's
    Cosine distance does (the matrix scan normalises what is not unit length)."""
    store.write_version(manifest("v1"), POINTS, VECTORS * np.array([[3.0], [0.5], [2.0]], dtype=np.float32))
    index = store.open_version("v1")
    try:
        [hits] = index.searcher.search(VECTORS[:1] * 7, 3)
        assert [h.text for h in hits] == ["alpha", "alpha two", "beta"]
        assert [h.similarity for h in hits] == pytest.approx([1.0, float(VECTORS[0] @ VECTORS[1]), 0.0], abs=1e-5)
    finally:
        index.close()


def test_the_matrix_scan_copies_a_small_index_and_maps_a_large_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Vectors up to PRIVATE_BYTES are copied into the process (faster scans); beyond, the file
    stays mapped (shared between worker processes); both search alike."""
    from router_core.store import matrix

    store = EdgeStore(tmp_path / "data")
    store.write_version(manifest("v1"), POINTS, VECTORS)
    found = []
    for limit, mapped in ((VECTORS.nbytes, False), (VECTORS.nbytes - 1, True)):
        monkeypatch.setattr(matrix, "PRIVATE_BYTES", limit)
        index = store.open_version("v1")
        try:
            held = index.searcher._matrix  # type: ignore[attr-defined]
            base = held
            while getattr(base, "base", None) is not None:
                base = base.base
            assert isinstance(base, mmap.mmap) == mapped
            found.append([(h.text, round(h.similarity, 6)) for h in index.searcher.search(VECTORS[1:2], 3)[0]])
        finally:
            index.close()
    assert found[0] == found[1] and found[0][0][0] == "alpha two"


@pytest.mark.parametrize(
    "stored",
    [np.ones((3, 5), np.float32), np.ones(3, np.float32), np.array([[np.nan] * 4] * 3, np.float32)],
    ids=["wrong dimension", "one dimension", "not finite"],
)
def test_the_matrix_scan_refuses_vectors_that_do_not_fit_the_version(tmp_path: Path, stored: np.ndarray) -> None:
    """A version whose vectors.npy was replaced by vectors of another shape, or holding NaN, is
    refused naming the version, not served with wrong neighbours."""
    store = EdgeStore(tmp_path / "data")
    store.write_version(manifest("v1"), POINTS, VECTORS)
    np.save(tmp_path / "data" / "router" / "versions" / "v1" / "vectors.npy", stored)
    with pytest.raises(StoreUnavailable, match="v1"):
        store.open_version("v1")


def test_follow_ups_are_stored_with_the_version_and_never_neighbours(store: IndexStore) -> None:
    """A route set's follow-ups (points of the reserved route) come back with the opened version
    as its follow-up matrix and its table's follow-ups, never as a search hit, even where they
    are the nearest points."""
    follow_ups = (
        ExamplePoint("00000000-0000-0000-0000-000000000004", FOLLOW_UP_ROUTE, "yes please"),
        ExamplePoint("00000000-0000-0000-0000-000000000005", FOLLOW_UP_ROUTE, "and for two?"),
    )
    extra = np.array([[1, 0, 0, 0], [0, 0, 1, 0]], dtype=np.float32)
    table = dict(manifest("v1").route_table, follow_ups=2)
    store.write_version(
        replace(manifest("v1"), points=5, route_table=table), POINTS + follow_ups, np.concatenate([VECTORS, extra])
    )
    index = store.open_version("v1")
    try:
        hits = index.searcher.search(extra, 3)
        assert [h.text for h in hits[0]] == ["alpha", "alpha two", "beta"]  # "yes please" is nearer
        assert sorted(h.text for h in hits[1]) == ["alpha", "alpha two", "beta"]
        assert index.table.follow_ups == ("yes please", "and for two?")
        assert index.follow_ups is not None
        np.testing.assert_allclose(index.follow_ups, extra, atol=1e-6)
        assert {r.name for r in index.table.routes} == {"a", "b"}
    finally:
        index.close()


def test_replies_are_stored_with_the_version_and_never_neighbours(store: IndexStore) -> None:
    """A route set's replies (router_core.replies: points of their own reserved route, their
    counts in the table) come back with the opened version as its reply bank, in the table's
    order, beside its follow-ups; neither is ever a search hit, even as the nearest points."""
    reserved = (
        ExamplePoint("00000000-0000-0000-0000-000000000004", FOLLOW_UP_ROUTE, "yes please"),
        ExamplePoint("00000000-0000-0000-0000-000000000005", REPLY_ROUTE, "Anything else?"),
        ExamplePoint("00000000-0000-0000-0000-000000000006", REPLY_ROUTE, "How many people?"),
    )
    extra = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 2, 0, 0]], dtype=np.float32)
    counts = {"Anything else?": [7, 3], "How many people?": [0, 12]}
    table = dict(manifest("v1").route_table, follow_ups=1, replies=counts)
    store.write_version(
        replace(manifest("v1"), points=6, route_table=table), POINTS + reserved, np.concatenate([VECTORS, extra])
    )
    index = store.open_version("v1")
    try:
        hits = index.searcher.search(extra, 3)
        assert all({h.text for h in row} <= {"alpha", "alpha two", "beta"} for row in hits)
        assert [h.text for h in hits[0]] == ["alpha", "alpha two", "beta"]
        assert index.table.follow_ups == ("yes please",)
        assert index.table.replies == (Reply("Anything else?", 7, 3), Reply("How many people?", 0, 12))
        assert index.replies is not None
        np.testing.assert_allclose(index.replies.vectors, [[0, 0, 1, 0], [0, 1, 0, 0]], atol=1e-6)  # unit rows
        assert index.replies.new_topic.tolist() == [7, 0]
        assert index.replies.total.tolist() == [10, 12]
        assert index.follow_ups is not None and len(index.follow_ups) == 1
    finally:
        index.close()


def test_a_version_whose_replies_lack_their_counts_is_refused_naming_it(store: IndexStore) -> None:
    """Reply points with no counts in the version's table (a damaged or foreign version) are an
    unreadable table: opening it fails naming the version, never serves made-up chances."""
    reply = ExamplePoint("00000000-0000-0000-0000-000000000005", REPLY_ROUTE, "Anything else?")
    table = dict(manifest("v1").route_table, replies={"Something else entirely?": [1, 1]})
    store.write_version(
        replace(manifest("v1"), points=4, route_table=table),
        (*POINTS, reply),
        np.concatenate([VECTORS, np.array([[0, 0, 1, 0]], np.float32)]),
    )
    with pytest.raises(StoreUnavailable, match="v1"):
        store.open_version("v1")


def test_a_batch_search_answers_each_row_as_a_search_of_its_own(store: IndexStore) -> None:
    """Several query vectors searched in one call (a micro-batch) get, row by row and in order,
    the neighbours and scores each gets alone; an empty batch gets no rows."""
    store.write_version(manifest("v1"), POINTS, VECTORS)
    index = store.open_version("v1")
    try:
        queries = np.concatenate([VECTORS[::-1], VECTORS[:2] * 0.5 + VECTORS[2:4] * 0.5])
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        together = index.searcher.search(queries, 3)
        alone = [index.searcher.search(queries[i : i + 1], 3)[0] for i in range(len(queries))]
        assert len(together) == len(queries)
        for row, single in zip(together, alone, strict=True):
            assert [h.text for h in row] == [h.text for h in single]
            assert [h.similarity for h in row] == pytest.approx([h.similarity for h in single], abs=1e-6)
        assert together[0][0].text == POINTS[-1].text
        assert index.searcher.search(queries[:0], 3) == []
    finally:
        index.close()


def test_switching_and_dropping_versions(store: IndexStore) -> None:
    """The live version is never dropped; an old unused one is."""
    store.write_version(manifest("v1"), POINTS, VECTORS)
    store.activate("v1")
    store.write_version(manifest("v2"), POINTS[:1], VECTORS[:1])
    store.activate("v2")
    assert store.drop_version("v2") is False
    assert store.drop_version("v1") is True
    assert store.versions() == ["v2"]
    assert store.live_version() == "v2"


def test_activating_a_missing_version_fails(store: IndexStore) -> None:
    """The pointer cannot be switched to a version that does not exist."""
    with pytest.raises(IndexMissing):
        store.activate("nope")


def test_backends_agree_on_real_routes(tmp_path: Path, embedder: Embedder) -> None:
    """Every backend built from the shipped routes returns the same neighbours and decisions."""
    table = load_routes(SHIPPED_ROUTES)
    queries = [
        "How do I use async with Rust?",
        "What is 15% of 200?",
        "recipe for banana bread",
        "what discount can I give on a 3 year deal",
        "show me the leaderboard for Q3",
    ]
    results = []
    with QdrantHttpStandIn(api_key=HTTP_KEY) as server:
        stores: list[IndexStore] = [
            EdgeStore(tmp_path / "matrix"),
            EdgeStore(tmp_path / "engine", scan="engine"),
            QdrantStore(QdrantClient(":memory:")),
            http_store(server),
        ]
        for s in stores:
            report = run_reindex(table, s, embedder)
            index = s.open_version(report.version)
            try:
                results.append(
                    [
                        (d.route, d.fallback, [(x.text, round(x.similarity, 4)) for x in d.neighbours])
                        for d in Router(index, embedder).classify(queries)
                    ]
                )
            finally:
                index.close()
                s.close()
    assert results[0] == results[1] == results[2] == results[3]


def test_the_matrix_scan_finds_the_engines_neighbours(tmp_path: Path, embedder: Embedder) -> None:
    """The embedded default (vectors scanned in memory) against Qdrant Edge's exact search over
    the same version: for real queries and for blends of them, in one batch and in batches of
    the micro-batcher's sizes, the same neighbours in the same order with the same scores, down
    to every stored example (k = all); only examples tied in score may trade places."""
    report = run_reindex(load_routes(SHIPPED_ROUTES), EdgeStore(tmp_path), embedder)
    matrix = EdgeStore(tmp_path).open_version(report.version)
    engine = EdgeStore(tmp_path, scan="engine").open_version(report.version)
    try:
        queries = embedder.encode_queries(
            ["How do I use async with Rust?", "What is 15% of 200?", "recipe for banana bread", "hello", "refund"]
        )
        rng = np.random.default_rng(7)
        blends = rng.standard_normal((40, len(queries))) @ queries  # mixes, like conversation contexts
        rows = np.concatenate([queries, blends]).astype(np.float32)
        size = sum(len(r.examples) for r in matrix.table.routes)
        for k in (1, 5, 20, size):
            expected = engine.searcher.search(rows, k)
            batched = [row for i in range(0, len(rows), 16) for row in matrix.searcher.search(rows[i : i + 16], k)]
            for got in (matrix.searcher.search(rows, k), batched):
                assert len(got) == len(expected)
                for mine, theirs in zip(got, expected, strict=True):
                    assert len(mine) == len(theirs) == min(k, size)
                    assert [h.similarity for h in mine] == pytest.approx([h.similarity for h in theirs], abs=1e-5)
                    for a, b in zip(mine, theirs, strict=True):
                        if (a.route, a.text) != (b.route, b.text):  # only a tie may trade places
                            assert _tied(a.similarity, mine) and _tied(b.similarity, theirs), (k, a, b)
                    assert sum((a.route, a.text) != (b.route, b.text) for a, b in zip(mine, theirs, strict=True)) <= 2
    finally:
        matrix.close()
        engine.close()


def _tied(score: float, row: list[Any]) -> bool:
    """Another example of the row (or just past its end) scores the same, within float rounding."""
    return sum(abs(h.similarity - score) < 1e-5 for h in row) >= 2 or abs(row[-1].similarity - score) < 1e-5
