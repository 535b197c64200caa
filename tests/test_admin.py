"""Admin endpoints: the live version and an on-demand re-index."""

from __future__ import annotations

from pathlib import Path

import httpx

from devkit.serving import settings_for
from router_core import Embedder, load_routes, run_reindex
from router_core.store import EdgeStore
from tests.conftest import ServiceFactory


def test_index_status_and_reindex(
    tmp_path: Path, routes_dir: Path, embedder: Embedder, start_service: ServiceFactory
) -> None:
    """/admin/index reports the live version; /admin/reindex publishes edits and serves them at once."""
    data = tmp_path / "data"
    first = run_reindex(load_routes(routes_dir), EdgeStore(data), embedder).version
    url = start_service(settings_for(routes_dir, data))
    with httpx.Client(base_url=url, timeout=60) as c:
        status = c.get("/admin/index").json()
        assert status["version"] == first and status["examples"] > 300
        assert status["model"] == "sentence-transformers/all-MiniLM-L6-v2"
        assert {r["name"] for r in status["route_table"]["routes"]} >= {"coding", "maths"}
        assert "system_prompt" not in str(status)
        unchanged = c.post("/admin/reindex").json()
        assert unchanged["changed"] is False and unchanged["version"] == first
        (routes_dir / "maths.yaml").write_text(
            (routes_dir / "maths.yaml").read_text() + '  - "what is the cube root of 27"\n'
        )
        done = c.post("/admin/reindex").json()
        assert done["changed"] is True and done["embedded"] == 1
        assert done["serving"] == done["version"] != first
        assert c.post("/v1/classify", json={"query": "hi"}).json()["index_version"] == done["version"]
        assert 'router_reindex_total{outcome="changed",route_set="default"} 1.0' in c.get("/metrics").text


def test_reindex_with_broken_routes_keeps_serving(
    tmp_path: Path, routes_dir: Path, embedder: Embedder, start_service: ServiceFactory
) -> None:
    """A re-index over invalid YAML answers 422 naming the file, and the old version keeps serving."""
    data = tmp_path / "data"
    first = run_reindex(load_routes(routes_dir), EdgeStore(data), embedder).version
    url = start_service(settings_for(routes_dir, data))
    (routes_dir / "coding.yaml").write_text("name: coding\nexamples: [oops\n")
    with httpx.Client(base_url=url, timeout=60) as c:
        r = c.post("/admin/reindex")
        assert r.status_code == 422
        assert any(p.startswith("coding.yaml") and "invalid YAML" in p for p in r.json()["problems"])
        ok = c.post("/v1/classify", json={"query": "How do I use async with Rust?"}).json()
        assert ok["route"] == "coding" and ok["index_version"] == first
    assert EdgeStore(data).versions() == [first]
