"""The playground's page and the API endpoints it added: route examples with the live hygiene
check, evaluation of labelled queries, the caller's rights; all under the usual auth."""

from __future__ import annotations

import io
import json
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from pydantic import SecretStr

from devkit.serving import ROOT, SHIPPED_EVALS, settings_for
from indexer.commands.eval import run_eval
from indexer.context import Context
from indexer.conversation_commands import run_eval_conversations
from indexer.conversations import is_conversation_file
from indexer.hygiene import check_hygiene
from router_core import Embedder, load_routes, run_reindex
from router_core.store import EdgeStore
from service.route_examples import check_route
from service.security import AuthSettings
from service.settings import ServiceSettings
from tests.conftest import ServiceFactory

API_KEY, ADMIN = "ui-key-1", "ui-admin-1"


def indexer_eval_json(
    settings: ServiceSettings, embedder: Embedder, tmp_path: Path, file: str = "shipped-test.jsonl"
) -> dict[str, Any]:
    """What `python -m indexer eval evals/FILE --json` writes for the index of `settings` (the
    command's own function, with the session's model)."""
    path = tmp_path / "indexer-eval.json"
    ctx = Context(settings=settings, configured=settings, out=io.StringIO(), embedder=embedder)
    evaluate = run_eval_conversations if is_conversation_file(SHIPPED_EVALS / file) else run_eval
    assert evaluate(ctx, SHIPPED_EVALS / file, json_path=path, html_path=None) == 0
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_page_is_served_with_its_assets_and_a_strict_policy(client: httpx.Client) -> None:
    """`/` redirects to /ui; the page, script and style come from the package, same-origin only."""
    root = client.get("/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/ui"
    page = client.get("/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert 'data-public="open"' in page.text and 'data-admin="open"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing fetched from elsewhere
    for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
        asset = client.get(f"/ui/static/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
        assert "http://" not in asset.text and "https://" not in asset.text
    missing = client.get("/ui/static/..%2Fapp.py")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


def test_package_data_ships_every_page_file() -> None:
    """pyproject's package-data globs cover every file of service/ui, so an installed service has its page."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["service"]
    files = [p.relative_to(ROOT / "service").as_posix() for p in (ROOT / "service" / "ui").iterdir()]
    assert files and all(any(fnmatch(f, g) for g in globs) for f in files), (files, globs)


def test_route_examples_flag_what_hygiene_flags(client: httpx.Client, shipped_settings: ServiceSettings) -> None:
    """Per route, the examples nearer another route's example are those `indexer hygiene` flags by neighbour."""
    store = EdgeStore(shipped_settings.index.data_dir)
    try:
        live = store.live_version()
        assert live is not None
        stored = store.stored_points(live)
    finally:
        store.close()
    report = check_hygiene(stored.points, stored.vectors)
    by_neighbour = {(m.route, m.text): m for m in report.misplaced if m.by in ("neighbour", "both")}
    assert by_neighbour, "the shipped routes have examples nearer another route; the check must find some"
    routes = client.get("/v1/routes").json()
    seen = 0
    for route in routes["routes"]:
        body = client.get(f"/v1/routes/{route['name']}/examples").json()
        assert body["index_version"] == routes["index_version"]
        assert len(body["examples"]) == route["examples"]
        flagged = {(route["name"], e["text"]): e for e in body["examples"] if e["nearer"]}
        assert body["nearer_elsewhere"] == len(flagged)
        expected = {key: m for key, m in by_neighbour.items() if key[0] == route["name"]}
        assert set(flagged) == set(expected), route["name"]
        for key, e in flagged.items():
            assert e["nearer"]["route"] == expected[key].nearest_route
            assert e["nearer"]["text"] == expected[key].nearest_text
            assert e["nearer"]["similarity"] == pytest.approx(expected[key].nearest_similarity, abs=1e-4)
            assert e["own_similarity"] < e["nearer"]["similarity"]
        seen += len(flagged)
    assert seen == len(by_neighbour)


def test_check_route_reads_vectors_exactly() -> None:
    """The check compares an example's nearest own-route and other-route examples, itself excluded."""
    from router_core.manifest import ExamplePoint

    points = [ExamplePoint("1", "a", "a1"), ExamplePoint("2", "a", "a2"), ExamplePoint("3", "b", "b1")]
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]], dtype=np.float32)
    a1, a2 = check_route(points, vectors, "a")
    assert a1.own_similarity == pytest.approx(0.0) and a1.nearer is not None
    assert (a1.nearer.route, a1.nearer.text) == ("b", "b1") and a1.nearer.similarity == pytest.approx(0.8)
    assert a2.nearer is not None and a2.nearer.similarity == pytest.approx(0.6)
    [b1] = check_route(points, vectors, "b")
    assert b1.own_similarity is None and b1.nearer is not None  # alone in its route: any other is nearer
    assert check_route(points, vectors, "missing") == []


def test_unknown_route_examples_are_404(client: httpx.Client) -> None:
    """An unknown route name is a 404 problem naming it and the routes that exist."""
    r = client.get("/v1/routes/no-such-route/examples")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert "no-such-route" in body["detail"] and "coding" in body["routes"]


def test_routes_name_the_model_and_its_languages(client: httpx.Client, embedder: Embedder) -> None:
    """GET /v1/routes names the model the live version was built with and its languages (the playground shows them)."""
    model = client.get("/v1/routes").json()["model"]
    assert model == {"id": embedder.model_id, "languages": ["en"], "languages_note": "English only"}


def test_evaluation_matches_indexer_eval(
    client: httpx.Client, shipped_settings: ServiceSettings, embedder: Embedder, tmp_path: Path
) -> None:
    """POST /v1/evaluate of the shipped test file reports what `python -m indexer eval` reports."""
    assert client.get("/v1/evals").json()["files"] == [
        "multilingual.jsonl",
        "shipped-conversations.jsonl",
        "shipped-test.jsonl",
        "shipped-val.jsonl",
    ]
    served = client.post("/v1/evaluate", json={"file": "shipped-test.jsonl"})
    assert served.status_code == 200, served.text
    body = served.json()
    expected = indexer_eval_json(shipped_settings, embedder, tmp_path)
    assert body["report"] == expected["report"]
    assert body["index_version"] == expected["meta"]["index version"]
    assert body["params"] == expected["meta"]["params"]
    assert body["report"]["queries"] == 80 and body["report"]["accuracy"] > 0.8
    assert len(body["curve"]) == 81 and body["curve_svg"].startswith("<svg")
    at_threshold = next(p for p in body["curve"] if p["threshold"] == body["params"]["threshold"])
    assert at_threshold["accuracy"] == pytest.approx(body["report"]["accuracy"])
    posted = client.post(
        "/v1/evaluate", json={"jsonl": (SHIPPED_EVALS / "shipped-test.jsonl").read_text(encoding="utf-8")}
    )
    assert posted.json()["report"] == expected["report"]


def test_conversation_evaluation_matches_indexer_eval(
    client: httpx.Client, shipped_settings: ServiceSettings, embedder: Embedder, tmp_path: Path
) -> None:
    """POST /v1/evaluate of a conversations file that /v1/evals lists reports the turn-type
    figures, reasons and misrouted turns `python -m indexer eval` reports for it, posted or by name."""
    served = client.post("/v1/evaluate", json={"file": "shipped-conversations.jsonl"})
    assert served.status_code == 200, served.text
    body = served.json()
    expected = indexer_eval_json(shipped_settings, embedder, tmp_path, "shipped-conversations.jsonl")["report"]
    assert body["kind"] == "conversations" and "curve" not in body
    for key in ("scores", "last_message", "reasons", "misrouted"):
        assert body["report"][key] == expected[key], key
    assert body["report"]["misrouted_total"] == len(expected["misrouted"])
    assert body["report"]["scores"]["counts"]["all"] == 33 and body["report"]["scores"]["follow-up"] > 0.5
    assert body["params"]["conversation"]["strategy"] == "evidence"
    text = (SHIPPED_EVALS / "shipped-conversations.jsonl").read_text(encoding="utf-8")
    posted = client.post("/v1/evaluate", json={"jsonl": text})
    assert posted.status_code == 200 and posted.json()["report"]["scores"] == expected["scores"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"jsonl": '{"text": "hi", "label": "coding"}\nnot json\n'}, 400, "posted lines line 2: invalid JSON"),
        ({"jsonl": '{"id": "c", "messages": [{"role": "user", "content": "hi"}]}'}, 400, "no labelled user turn"),
        ({"jsonl": '{"id": "c", "messages": [{"role": "robot", "content": "hi"}]}'}, 400, "line 1: messages[0]"),
        ({"jsonl": '{"text": "", "label": "coding"}'}, 400, "'text' must be a non-empty string"),
        ({"jsonl": "\n\n"}, 400, "holds no labelled queries"),
        ({"file": "../routes/coding.yaml"}, 404, "no evaluation file named"),
        ({"file": "shipped-test.jsonl", "jsonl": "x"}, 400, "exactly one of jsonl or file"),
        ({}, 400, "exactly one of jsonl or file"),
    ],
)
def test_bad_evaluation_requests_are_named(
    client: httpx.Client, body: dict[str, str], status: int, needle: str
) -> None:
    """Unreadable lines, unknown files and ambiguous bodies are problems naming what is wrong."""
    r = client.post("/v1/evaluate", json=body)
    assert r.status_code == status and r.headers["content-type"] == "application/problem+json"
    assert needle in r.json()["detail"]


def test_evaluation_size_is_limited(
    tmp_path: Path, routes_dir: Path, embedder: Embedder, start_service: ServiceFactory
) -> None:
    """More labelled queries than ROUTER_LIMITS__MAX_EVAL_QUERIES is a 400 naming the limit."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    base = settings_for(routes_dir, data)
    url = start_service(base.model_copy(update={"limits": base.limits.model_copy(update={"max_eval_queries": 3})}))
    lines = "".join(json.dumps({"text": f"query {i}", "label": "oos"}) + "\n" for i in range(4))
    r = httpx.post(f"{url}/v1/evaluate", json={"jsonl": lines}, timeout=60)
    assert r.status_code == 400 and r.json()["limit"] == 3 and "4 labelled queries" in r.json()["detail"]


def test_new_endpoints_keep_auth_and_caller_rights(
    tmp_path: Path, routes_dir: Path, embedder: Embedder, start_service: ServiceFactory
) -> None:
    """With keys, the page's data endpoints need a key like any other; /v1/caller says who is admin."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    auth = AuthSettings(api_keys=[SecretStr(API_KEY)], admin_token=SecretStr(ADMIN))
    url = start_service(settings_for(routes_dir, data, auth=auth))
    with httpx.Client(base_url=url, timeout=60) as c:
        page = c.get("/ui")
        assert page.status_code == 200 and 'data-public="keyed"' in page.text and 'data-admin="token"' in page.text
        assert API_KEY not in page.text and ADMIN not in page.text
        for method, path, body in (
            ("GET", "/v1/routes/coding/examples", None),
            ("GET", "/v1/evals", None),
            ("POST", "/v1/evaluate", {"file": "shipped-test.jsonl"}),
            ("GET", "/v1/caller", None),
        ):
            assert c.request(method, path, json=body).status_code == 401, path
            keyed = c.request(method, path, json=body, headers={"Authorization": f"Bearer {API_KEY}"})
            assert keyed.status_code == 200, (path, keyed.text)
        as_key = c.get("/v1/caller", headers={"Authorization": f"Bearer {API_KEY}"}).json()
        as_admin = c.get("/v1/caller", headers={"Authorization": f"Bearer {ADMIN}"}).json()
        assert as_key == {"admin": False, "sets": ["default"], "admin_sets": []}
        assert as_admin == {"admin": True, "sets": ["default"], "admin_sets": ["default"]}
        metrics = c.get("/metrics").text
        assert 'endpoint="/v1/routes/{name}/examples"' in metrics and 'endpoint="/v1/evaluate"' in metrics
