"""The classification service over real HTTP: routing, endpoints, bad input, start-up checks."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devkit.serving import ROOT, free_port, settings_for
from router_core import Embedder, IndexIncompatible, IndexMissing, load_embedder, load_routes, run_reindex
from router_core.embedding import DEFAULT_MODEL, resolve_model
from router_core.store import EdgeStore
from service.services import Services
from tests.conftest import ServiceFactory

SEEDS = [
    ("How do I use async with Rust?", "coding"),
    ("What is 15% of 200?", "maths"),
]
OFF_TOPIC = "What's a good recipe for banana bread?"


@pytest.mark.parametrize(("query", "route"), SEEDS)
def test_seed_queries_reach_their_route(client: httpx.Client, query: str, route: str) -> None:
    """The seed queries route to coding and maths, not to the fallback."""
    body = client.post("/v1/classify", json={"query": query}).json()
    assert body["route"] == route
    assert body["fallback"] is False
    assert body["votes"][route] >= 1
    assert body["score"] > 0.45
    assert body["agent"] == f"{route}-agent"
    assert body["index_version"].startswith("v")
    assert "neighbours" not in body


def test_off_topic_query_falls_back_to_default_agent(client: httpx.Client) -> None:
    """A query unlike every route lands on the default agent."""
    body = client.post("/v1/classify", json={"query": OFF_TOPIC}).json()
    assert body["route"] == "default"
    assert body["fallback"] is True
    assert body["agent"] == "default-agent"
    assert body["votes"] == {}
    assert body["reason"] == "below_threshold"


def test_explain_lists_neighbours(client: httpx.Client) -> None:
    """With explain, the response carries the neighbours (text, route, similarity), nearest first."""
    body = client.post("/v1/classify", json={"query": SEEDS[1][0], "explain": True}).json()
    neighbours = body["neighbours"]
    assert len(neighbours) == 5
    assert {"text", "route", "similarity"} == set(neighbours[0])
    sims = [n["similarity"] for n in neighbours]
    assert sims == sorted(sims, reverse=True)
    assert neighbours[0]["similarity"] == body["score"]


def test_batch_matches_single_queries(client: httpx.Client) -> None:
    """A batch returns one result per query, in order, equal to classifying each alone."""
    queries = [q for q, _ in SEEDS] + [OFF_TOPIC]
    batch = client.post("/v1/classify/batch", json={"queries": queries}).json()["results"]
    singles = [client.post("/v1/classify", json={"query": q}).json() for q in queries]
    assert [r["route"] for r in batch] == ["coding", "maths", "default"]
    assert [(r["route"], r["score"]) for r in batch] == [(r["route"], r["score"]) for r in singles]


def test_routes_lists_counts_and_agents_without_secrets(client: httpx.Client) -> None:
    """GET /v1/routes shows routes, example counts and agent names; no key settings."""
    body = client.get("/v1/routes").json()
    routes = {r["name"]: r for r in body["routes"]}
    assert routes["coding"]["examples"] >= 40
    assert routes["coding"]["agent"]["name"] == "coding-agent"
    assert body["default_agent"]["name"] == "default-agent"
    text = str(body)
    assert "api_key" not in text and "system_prompt" not in text


def test_health_and_readiness(client: httpx.Client) -> None:
    """/healthz answers alive; /readyz names the model and backend serving, the ones the index
    records, and the parity check's result."""
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["model"] == checks["index_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert checks["backend"] == checks["index_backend"] == "onnx"
    assert checks["parity"]["ok"] is True
    assert checks["parity"]["min_cosine"] >= checks["parity"]["required"] == 0.9999


def test_openapi_schema_and_docs(client: httpx.Client) -> None:
    """The OpenAPI schema lists the endpoints and the docs page is served."""
    schema = client.get("/schema/openapi.json").json()
    assert {"/v1/classify", "/v1/classify/batch", "/v1/routes", "/healthz", "/readyz"} <= set(schema["paths"])
    assert client.get("/schema/swagger").status_code == 200


def test_the_docs_page_needs_nothing_from_elsewhere(client: httpx.Client) -> None:
    """/schema/swagger (and /schema) is Swagger UI served by the service itself: every script and
    style it names is on this origin and served here, no inline script, and a
    Content-Security-Policy that allows only this origin (it used to load swagger-ui from a CDN
    without integrity, blank offline)."""
    for path in ("/schema/swagger", "/schema"):
        page = client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self';" in csp and "http" not in csp
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        sources = [s for s in sources if s != "data:,"]  # the empty favicon
        assert sources and all(s.startswith("/schema/") for s in sources), sources
        assert "<script>" not in page.text  # every script is a file
        for source in sources:
            asset = client.get(source)
            assert asset.status_code == 200 and len(asset.content) > 0, source
            assert "//cdn" not in asset.text and "unpkg.com" not in asset.text, source
    bundle = client.get("/schema/swagger/static/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in bundle.text and len(bundle.content) > 500_000
    assert client.get("/schema/scalar").status_code == 404  # Scalar loaded from a CDN: gone


BAD = [
    ("empty query", "/v1/classify", {"query": ""}, 400, "empty"),
    ("whitespace query", "/v1/classify", {"query": " \n\t "}, 400, "empty"),
    ("query over the limit", "/v1/classify", {"query": "a" * 2001}, 400, "limit is 2000"),
    ("unknown field", "/v1/classify", {"query": "hi", "colour": "red"}, 400, "unknown field `colour`"),
    ("missing field", "/v1/classify", {"explain": True}, 400, "send exactly one of query or messages"),
    (
        "query and messages",
        "/v1/classify",
        {"query": "hi", "messages": [{"role": "user", "content": "hi"}]},
        400,
        "exactly one",
    ),
    (
        "messages without a user message",
        "/v1/classify",
        {"messages": [{"role": "assistant", "content": "hi"}]},
        400,
        "no user message",
    ),
    ("empty conversations", "/v1/classify/batch", {"conversations": []}, 400, "length >= 1"),
    (
        "queries and conversations",
        "/v1/classify/batch",
        {"queries": ["a"], "conversations": [{"messages": []}]},
        400,
        "exactly one",
    ),
    ("wrong type", "/v1/classify", {"query": 42}, 400, "Expected `str"),
    ("not an object", "/v1/classify", ["hi"], 400, "Expected `object`"),
    ("empty batch", "/v1/classify/batch", {"queries": []}, 400, "length >= 1"),
    ("batch over the limit", "/v1/classify/batch", {"queries": ["x"] * 129}, 400, "limit is 128"),
    ("blank query inside a batch", "/v1/classify/batch", {"queries": ["ok", " "]}, 400, "queries[1] is empty"),
]


@pytest.mark.parametrize(("path", "payload", "status", "needle"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_gets_a_4xx_naming_the_problem(
    client: httpx.Client, path: str, payload: object, status: int, needle: str
) -> None:
    """Each kind of bad input gets a problem-details 4xx whose body names the problem."""
    resp = client.post(path, json=payload)
    assert resp.status_code == status
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert needle in resp.text


def test_malformed_json_and_huge_body(client: httpx.Client) -> None:
    """Broken JSON is a 400 and a body over the size limit a 413, never a 500."""
    resp = client.post("/v1/classify", content=b'{"query": "unterminated', headers={"content-type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["status"] == 400
    huge = client.post(
        "/v1/classify", content=b'{"query": "' + b"a" * 1_100_000 + b'"}', headers={"content-type": "application/json"}
    )
    assert huge.status_code == 413


def test_unknown_path_and_method(client: httpx.Client) -> None:
    """Unknown paths give 404 and wrong methods 405, as problem details."""
    assert client.get("/v1/nope").status_code == 404
    assert client.get("/v1/classify").status_code == 405


def test_refuses_to_start_without_index(tmp_path: Path, routes_dir: Path, embedder: Embedder) -> None:
    """Start-up fails with a message naming the re-index command when no index exists."""
    with pytest.raises(IndexMissing, match="python -m indexer"):
        Services.build(settings_for(routes_dir, tmp_path / "empty"), embedder=embedder)


def renamed_model(target: Path, model_id: str) -> Path:
    """A copy of the default model's files identified as `model_id` (as fine-tuning writes)."""
    shutil.copytree(resolve_model(DEFAULT_MODEL)[0], target)
    (target / "router-model.json").write_text(json.dumps({"model_id": model_id}))
    return target


@pytest.mark.slow
def test_refuses_index_built_with_another_model(tmp_path: Path, routes_dir: Path, embedder: Embedder) -> None:
    """With follow_index_model off, start-up fails when the live index records another model."""
    other = load_embedder(str(renamed_model(tmp_path / "other-model", "some-other-model")), backend="torch")
    run_reindex(load_routes(routes_dir), EdgeStore(tmp_path / "data"), other)
    with pytest.raises(IndexIncompatible, match="some-other-model"):
        Services.build(settings_for(routes_dir, tmp_path / "data", follow_index_model=False), embedder=embedder)


@pytest.mark.slow
def test_follows_the_model_the_index_records(
    tmp_path: Path, routes_dir: Path, embedder: Embedder, start_service: ServiceFactory
) -> None:
    """A live re-index with another (here: renamed) model makes the service load that model."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    settings = settings_for(routes_dir, data)
    url = start_service(settings)
    model_dir = renamed_model(tmp_path / "tuned-model", "minilm-tuned-test")
    tuned = load_embedder(str(model_dir), cache_dir=settings.index.derived_models_dir)  # where the service looks
    new = run_reindex(load_routes(routes_dir), EdgeStore(data), tuned).version
    assert EdgeStore(data).manifest(new).model_source == str(model_dir.resolve())
    with httpx.Client(base_url=url, timeout=60) as c:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and c.get("/readyz").json()["checks"].get("index_version") != new:
            time.sleep(0.2)
        ready = c.get("/readyz").json()["checks"]
        assert ready["index_version"] == new and ready["model"] == "minilm-tuned-test"
        body = c.post("/v1/classify", json={"query": "How do I use async with Rust?"}).json()
        assert body["index_version"] == new and body["route"] == "coding"


@pytest.mark.slow
def test_service_command_exits_with_message_without_index(tmp_path: Path) -> None:
    """`python -m service` on an empty data directory exits 2 and says what to run."""
    env = {**os.environ, "ROUTER_INDEX__DATA_DIR": str(tmp_path / "none"), "ROUTER_HTTP__PORT": str(free_port())}
    proc = subprocess.run(
        [sys.executable, "-m", "service"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 2
    assert "no index found" in proc.stderr and "python -m indexer" in proc.stderr


def test_service_follows_a_reindex_without_restart(
    tmp_path: Path, routes_dir: Path, embedder: Embedder, start_service: ServiceFactory
) -> None:
    """After a re-index the running service answers from the new version within seconds."""
    data = tmp_path / "data"
    first = run_reindex(load_routes(routes_dir), EdgeStore(data), embedder).version
    url = start_service(settings_for(routes_dir, data))
    query = "book a table for two at an italian restaurant"
    with httpx.Client(base_url=url, timeout=30) as c:
        before = c.post("/v1/classify", json={"query": query}).json()
        assert before["route"] == "default" and before["index_version"] == first
        (routes_dir / "dining.yaml").write_text(
            "name: dining\ndescription: restaurant bookings\n"
            "agent: {kind: canned, name: dining-agent, reply: ok}\nexamples:\n"
            "  - book a table at an italian restaurant\n  - reserve dinner for two tonight\n"
        )
        second = run_reindex(load_routes(routes_dir), EdgeStore(data), embedder).version
        deadline = time.monotonic() + 15
        body = before
        while time.monotonic() < deadline and body["index_version"] != second:
            time.sleep(0.1)
            body = c.post("/v1/classify", json={"query": query}).json()
        assert body["index_version"] == second
        assert body["route"] == "dining"
        assert c.get("/v1/routes").json()["index_version"] == second
