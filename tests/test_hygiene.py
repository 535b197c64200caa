"""Route hygiene on a real embedded index: misplaced examples, cross-route duplicates, thin routes."""

from __future__ import annotations

import io
import json
from pathlib import Path

from indexer.cli import main as indexer_main
from indexer.hygiene import check_hygiene
from router_core import Embedder, load_routes, run_reindex
from router_core.manifest import ExamplePoint, point_id
from router_core.store import EdgeStore
from tests.test_evaluation import TINY_ROUTES, write_tiny_routes

PLANTED = "will it be windy and rainy tomorrow afternoon"  # a weather question filed under music
TWIN = "play some jazz music"
ROUTES = {
    **TINY_ROUTES,
    "music": [*TINY_ROUTES["music"], PLANTED, TWIN],
    "banking": [*TINY_ROUTES["banking"], "play some jazz music please"],
    "greeting": ["hello there", "hi, good morning"],
}


def test_hygiene_finds_planted_problems(tmp_path: Path, embedder: Embedder) -> None:
    """A weather question under music is misplaced, a near-copy across routes is a duplicate, a 2-example route is thin."""
    routes = write_tiny_routes(tmp_path / "routes", ROUTES)
    data = tmp_path / "data"
    run_reindex(load_routes(routes), EdgeStore(data), embedder)
    out = io.StringIO()
    json_path = tmp_path / "hygiene.json"
    code = indexer_main(
        [
            "hygiene",
            "--routes",
            str(routes),
            "--data-dir",
            str(data),
            "--min-examples",
            "5",
            "--duplicate-similarity",
            "0.93",
            "--json",
            str(json_path),
            "--html",
            str(tmp_path / "h.html"),
        ],
        out=out,
    )
    assert code == 0
    report = json.loads(json_path.read_text())["report"]
    misplaced = {(m["route"], m["text"]): m for m in report["misplaced"]}
    planted = misplaced[("music", PLANTED)]
    assert planted["by"] == "both"
    assert planted["nearest_route"] == "weather"
    assert planted["other_centroid"] == "weather"
    assert planted["other_centroid_similarity"] > planted["own_centroid_similarity"]
    assert {(d["route_a"], d["route_b"]) for d in report["near_duplicates"]} == {("banking", "music")}
    assert report["near_duplicates"][0]["similarity"] >= 0.93
    assert report["small_routes"] == [{"route": "greeting", "examples": 2}]
    text = out.getvalue()
    assert PLANTED in text
    assert "near-duplicates across routes (cosine >= 0.93): 1" in text
    assert "Route hygiene" in (tmp_path / "h.html").read_text()


def test_clean_routes_have_no_findings(embedder: Embedder) -> None:
    """Well-separated routes with enough examples give an empty report."""
    texts = [(name, e) for name, examples in TINY_ROUTES.items() for e in examples]
    points = [ExamplePoint(point_id(r, t), r, t) for r, t in texts]
    report = check_hygiene(points, embedder.encode_documents([t for _, t in texts]), min_examples=6)
    assert report.near_duplicates == ()
    assert report.small_routes == ()
    assert report.misplaced == ()
    assert report.routes == 3
    assert report.examples == 18
