"""Several route sets in one service: where they come from, and each routing with its own index."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from devkit.routes_dirs import copy_shipped, index_route_sets, rename_router, shipped_sets, swap_examples
from devkit.serving import SHIPPED_ROUTES, settings_for
from router_core import (
    DEFAULT_SET,
    Embedder,
    Router,
    RouterSettings,
    RouteSetsInvalid,
    RouteSetUnknown,
    collection_for,
    load_routes,
    route_sets_of,
    run_reindex,
)
from router_core.decision_log import DecisionLogSettings
from router_core.decision_log.store import DecisionStore
from router_core.settings import QdrantServerSettings, RouteSetEntry
from router_core.store import EdgeStore
from service.settings import ServiceSettings
from tests.conftest import ServiceFactory
from tests.qdrant_http import QdrantHttpStandIn
from tests.test_observability import access_lines
from tests.test_qdrant_http import KEY, rest_client

RUST = "How do I use async with Rust?"
PERCENT = "What is 15% of 200?"


def two_sets(root: Path) -> Path:
    """`alpha`: the shipped routes; `beta`: the same route names with the coding and maths
    examples exchanged (a query about Rust is `maths` there), under its own router name."""
    shipped_sets(root, ["alpha", "beta"])
    swap_examples(root / "beta", "coding", "maths")
    rename_router(root / "beta", "beta-router")
    return root


@pytest.fixture
def two_set_settings(tmp_path: Path, embedder: Embedder) -> ServiceSettings:
    """Service settings for a routes root of two indexed sets."""
    settings = settings_for(two_sets(tmp_path / "routes"), tmp_path / "data")
    index_route_sets(settings, embedder)
    return settings


# -- where the sets come from ---------------------------------------------------------------------
def test_a_single_folder_is_the_default_set_unchanged(tmp_path: Path) -> None:
    """A routes directory holding route files is one set, `default`, with the index it always had."""
    settings = RouterSettings(_env_file=None, routes_dir=copy_shipped(tmp_path / "routes"))  # type: ignore[call-arg]
    found = route_sets_of(settings)
    assert (found.names, found.default, found.layout) == ((DEFAULT_SET,), DEFAULT_SET, "single")
    assert found.settings_for(settings, DEFAULT_SET) is settings
    assert found.get(DEFAULT_SET).index_settings(settings.index).collection == "router"


def test_a_routes_root_holds_one_set_per_folder(tmp_path: Path) -> None:
    """Each folder of a routes root is a set named by it, in name order, with a collection of its
    own; hidden folders and loose files are not sets; the first set is the default without `default`."""
    root = shipped_sets(tmp_path / "routes", ["support", "it-desk"])
    (root / ".git").mkdir()
    (root / "README.md").write_text("notes")
    settings = RouterSettings(_env_file=None, routes_dir=root)  # type: ignore[call-arg]
    found = route_sets_of(settings)
    assert (found.names, found.default, found.layout) == (("it-desk", "support"), "it-desk", "folders")
    narrowed = found.settings_for(settings, "support")
    assert narrowed.routes_dir == root / "support" and narrowed.index.collection == "router-support"
    assert narrowed.route_set_origin == (root, "support")
    with pytest.raises(RouteSetUnknown, match="no route set named 'sales'; the route sets are it-desk, support"):
        found.get("sales")


@pytest.mark.parametrize(
    ("folder", "problem"),
    [
        ("Support", "'Support': not a route set name"),
        ("it_desk", "'it_desk': not a route set name"),
        ("-x", "'-x': not a route set name"),
        ("a" * 33, "not a route set name"),
    ],
)
def test_a_folder_that_cannot_be_a_set_name_is_refused(tmp_path: Path, folder: str, problem: str) -> None:
    """Set names are [a-z0-9-] (at most 32, no leading dash): another folder name is an error
    naming it, never served under another name."""
    root = shipped_sets(tmp_path / "routes", ["ok"])
    (root / folder).mkdir()
    with pytest.raises(RouteSetsInvalid, match=re.escape(problem)):
        route_sets_of(RouterSettings(_env_file=None, routes_dir=root))  # type: ignore[call-arg]


def test_a_set_folder_linking_outside_the_root_is_refused(tmp_path: Path) -> None:
    """A set folder that is a symbolic link out of the routes root is refused, naming it."""
    root = shipped_sets(tmp_path / "routes", ["ok"])
    os.symlink(copy_shipped(tmp_path / "elsewhere"), root / "outside")
    with pytest.raises(RouteSetsInvalid, match="outside: a symbolic link leading outside the routes root"):
        route_sets_of(RouterSettings(_env_file=None, routes_dir=root))  # type: ignore[call-arg]


def test_sets_named_in_the_settings_and_the_default_set(tmp_path: Path) -> None:
    """ROUTER_ROUTE_SETS names sets and folders; ROUTER_DEFAULT_SET picks the default; a duplicate,
    an unknown default and too many sets are errors naming the setting."""
    a, b = copy_shipped(tmp_path / "a"), copy_shipped(tmp_path / "b")
    entries = [RouteSetEntry(name="sales", routes_dir=a), RouteSetEntry(name="default", routes_dir=b)]
    base = RouterSettings(_env_file=None, route_sets=entries)  # type: ignore[call-arg]
    found = route_sets_of(base)
    assert (found.names, found.default, found.layout) == (("default", "sales"), "default", "configured")
    assert found.settings_for(base, "sales").route_set_origin == (None, "sales")
    assert route_sets_of(base.model_copy(update={"default_set": "sales"})).default == "sales"
    with pytest.raises(RouteSetsInvalid, match="ROUTER_DEFAULT_SET names 'other'"):
        route_sets_of(base.model_copy(update={"default_set": "other"}))
    with pytest.raises(RouteSetsInvalid, match="ROUTER_ROUTE_SETS names sales more than once"):
        route_sets_of(base.model_copy(update={"route_sets": [*entries, entries[0]]}))
    limited = base.model_copy(update={"route_files": base.route_files.model_copy(update={"max_sets": 1})})
    with pytest.raises(
        RouteSetsInvalid, match=re.escape("2 route sets; the limit is 1 (ROUTER_ROUTE_FILES__MAX_SETS)")
    ):
        route_sets_of(limited)


@pytest.mark.parametrize(
    ("base", "name", "collection"),
    [("router", "default", "router"), ("router", "it-desk", "router-it-desk"), ("acme", "sales", "acme-sales")],
)
def test_each_set_has_its_own_collection(base: str, name: str, collection: str) -> None:
    """`default` keeps the configured collection (a single-folder layout's index serves on);
    any other set gets `<collection>-<set>`; a name that is not a set name is never used."""
    assert collection_for(base, name) == collection
    with pytest.raises(RouteSetsInvalid):
        collection_for(base, "../escape")


# -- two sets in one service ------------------------------------------------------------------------
def test_two_sets_with_the_same_route_names_route_differently(
    two_set_settings: ServiceSettings, start_service: ServiceFactory
) -> None:
    """The same query goes to `coding` in one set and to `maths` in the other (same route names,
    other examples), each answer naming its set and index; the plain paths use the default set."""
    url = start_service(two_set_settings)
    with httpx.Client(base_url=url, timeout=30) as c:
        alpha = c.post("/v1/sets/alpha/classify", json={"query": RUST})
        beta = c.post("/v1/sets/beta/classify", json={"query": RUST})
        plain = c.post("/v1/classify", json={"query": RUST})
        assert (alpha.json()["route"], beta.json()["route"], plain.json()["route"]) == ("coding", "maths", "coding")
        assert [r.json()["route_set"] for r in (alpha, beta, plain)] == ["alpha", "beta", "alpha"]
        assert [r.headers["x-router-set"] for r in (alpha, beta, plain)] == ["alpha", "beta", "alpha"]
        assert alpha.json()["index_version"] != beta.json()["index_version"]
        batch = c.post("/v1/sets/beta/classify/batch", json={"queries": [RUST, PERCENT]}).json()["results"]
        assert [(r["route"], r["route_set"]) for r in batch] == [("maths", "beta"), ("coding", "beta")]
        answer = c.post("/v1/sets/beta/answer", json={"query": PERCENT}).json()
        assert (answer["route"], answer["route_set"]) == ("coding", "beta")
        routes = c.get("/v1/routes", params={"set": "beta"}).json()
        assert (routes["router"], routes["route_set"]) == ("beta-router", "beta")
        beta_maths = c.get("/v1/routes/maths/examples", params={"set": "beta"}).json()["examples"]
        alpha_coding = c.get("/v1/routes/coding/examples", params={"set": "alpha"}).json()["examples"]
        assert {e["text"] for e in beta_maths} == {e["text"] for e in alpha_coding}
        sets = c.get("/v1/sets").json()
        assert sets["default"] == "alpha" and [s["name"] for s in sets["sets"]] == ["alpha", "beta"]
        assert [s["router"] for s in sets["sets"]] == ["router", "beta-router"]


def test_an_unknown_or_malformed_set_is_a_problem_naming_it(
    two_set_settings: ServiceSettings, start_service: ServiceFactory
) -> None:
    """An unknown set is 404 naming the sets there are; a malformed `?set=` is 400."""
    url = start_service(two_set_settings)
    with httpx.Client(base_url=url, timeout=30) as c:
        missing = c.post("/v1/sets/gamma/classify", json={"query": RUST})
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
        assert "no route set named gamma; the route sets are alpha, beta" in missing.json()["detail"]
        assert c.get("/v1/routes", params={"set": "gamma"}).status_code == 404
        assert c.get("/v1/routes", params={"set": "../alpha"}).status_code == 400
        assert c.post("/v1/sets/..%2Falpha/classify", json={"query": RUST}).status_code == 404


def test_metrics_logs_readiness_and_the_decision_log_carry_the_set(
    tmp_path: Path, two_set_settings: ServiceSettings, start_service: ServiceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Decisions and requests are counted per set, the access log names the set, /readyz checks
    each set, the decision log records the set that decided and each set's index version is exported."""
    log_path = tmp_path / "decisions.sqlite3"
    settings = two_set_settings.model_copy(update={"decision_log": DecisionLogSettings(record="all", path=log_path)})
    url = start_service(settings)
    with httpx.Client(base_url=url, timeout=30) as c, caplog.at_level(logging.INFO, logger="router.access"):
        c.post("/v1/sets/alpha/classify", json={"query": RUST}, headers={"X-Request-ID": "set-alpha"})
        c.post("/v1/sets/beta/classify", json={"query": RUST}, headers={"X-Request-ID": "set-beta"})
        logged = {line["request_id"]: line for line in access_lines(caplog, "set-alpha", "set-beta")}
        assert (logged["set-alpha"]["route_set"], logged["set-beta"]["route_set"]) == ("alpha", "beta")
        assert (logged["set-alpha"]["route"], logged["set-beta"]["route"]) == ("coding", "maths")
        metrics = c.get("/metrics").text
        assert 'router_decisions_total{fallback="false",reason="vote",route="coding",route_set="alpha"} 1.0' in metrics
        assert 'router_decisions_total{fallback="false",reason="vote",route="maths",route_set="beta"} 1.0' in metrics
        assert 'endpoint="/v1/sets/{set}/classify",method="POST",route_set="beta",status="200"' in metrics
        assert re.search(r'router_index_version_info\{created_at="[^"]+",model="[^"]+",route_set="beta"', metrics)
        ready = c.get("/readyz").json()
        assert ready["status"] == "ready" and set(ready["checks"]["sets"]) == {"alpha", "beta"}
        assert all(s["ready"] and s["index_version"] for s in ready["checks"]["sets"].values())
        c.post("/v1/feedback", json={"request_id": "set-beta", "correct": True})  # written after the two records
    store = DecisionStore.open(f"sqlite:///{log_path}", retention_s=3600)
    try:
        assert {(r.record.request_id, r.record.route_set, r.record.route) for r in store.queue("recent", 10)} >= {
            ("set-alpha", "alpha", "coding")
        }
        assert [r.record.route_set for r in store.labelled(route_set="beta")] == ["beta"]
    finally:
        store.close()


def test_a_broken_set_is_named_while_the_other_serves_until_it_is_reindexed(
    tmp_path: Path, embedder: Embedder, start_service: ServiceFactory
) -> None:
    """A set whose folder is broken and was never indexed does not stop the service: /readyz is
    `degraded` naming it and why, its requests are 503, the other set serves; once its folder is
    fixed, an admin re-index of that set brings it up without a restart."""
    root = shipped_sets(tmp_path / "routes", ["good", "broken"])
    settings = settings_for(root, tmp_path / "data")
    index_route_sets(settings, embedder, names=["good"])
    maths = root / "broken" / "maths.yaml"
    kept = maths.read_text(encoding="utf-8")
    maths.write_text("name: maths\nexamples: [unclosed\n", encoding="utf-8")
    url = start_service(settings)
    with httpx.Client(base_url=url, timeout=60) as c:
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        broken = ready.json()["checks"]["sets"]["broken"]
        assert broken["ready"] is False and "no index found" in broken["error"]
        assert "python -m indexer reindex --set broken" in broken["error"]
        refused = c.post("/v1/sets/broken/classify", json={"query": RUST})
        assert refused.status_code == 503 and "route set 'broken' cannot serve" in refused.json()["detail"]
        assert c.post("/v1/sets/good/classify", json={"query": RUST}).json()["route"] == "coding"
        failed = c.post("/admin/reindex", params={"set": "broken"})
        assert failed.status_code == 422 and any("maths.yaml" in p for p in failed.json()["problems"])
        maths.write_text(kept, encoding="utf-8")
        done = c.post("/admin/reindex", params={"set": "broken"})
        assert done.status_code == 200 and done.json()["serving"] == done.json()["version"]
        assert c.post("/v1/sets/broken/classify", json={"query": RUST}).json()["route"] == "coding"
        assert c.get("/readyz").json()["status"] == "ready"


def test_a_failed_reindex_of_one_set_touches_no_other(
    two_set_settings: ServiceSettings, start_service: ServiceFactory
) -> None:
    """Re-indexing every set with one set's folder broken: 207, the other set published its
    change, the broken set keeps serving its live version."""
    url = start_service(two_set_settings)
    root = two_set_settings.routes_dir
    with httpx.Client(base_url=url, timeout=60) as c:
        before = {s: c.get("/admin/index", params={"set": s}).json()["version"] for s in ("alpha", "beta")}
        (root / "alpha" / "maths.yaml").write_text(
            (root / "alpha" / "maths.yaml").read_text(encoding="utf-8") + "  - what is the cube root of 343\n",
            encoding="utf-8",
        )
        (root / "beta" / "coding.yaml").write_text("name: coding\nnot: [valid\n", encoding="utf-8")
        both = c.post("/admin/reindex")
        assert both.status_code == 207, both.text
        outcome = {s["route_set"]: s for s in both.json()["sets"]}
        assert outcome["alpha"]["ok"] and outcome["alpha"]["result"]["changed"]
        assert not outcome["beta"]["ok"] and outcome["beta"]["problem"]["status"] == 422
        after = {s: c.get("/admin/index", params={"set": s}).json()["version"] for s in ("alpha", "beta")}
        assert after["alpha"] != before["alpha"] and after["beta"] == before["beta"]
        assert c.post("/v1/sets/beta/classify", json={"query": RUST}).json()["route"] == "maths"


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_on_a_qdrant_server_each_set_has_its_own_alias(
    tmp_path: Path, embedder: Embedder, start_service: ServiceFactory
) -> None:
    """On a Qdrant server (the stand-in, over HTTP) each set is the alias `router-<set>` with its
    own version collections, and the service routes each set from its own."""
    base = settings_for(two_sets(tmp_path / "routes"), tmp_path / "unused")
    server = QdrantServerSettings(url="", api_key=SecretStr(KEY), timeout_s=5)
    with QdrantHttpStandIn(api_key=KEY) as qdrant:
        index = base.index.model_copy(update={"qdrant": server.model_copy(update={"url": qdrant.url})})
        settings = base.model_copy(update={"index": index})
        index_route_sets(settings, embedder)
        client = rest_client(qdrant.url)
        aliases = {a.alias_name: a.collection_name for a in client.get_aliases().aliases}
        client.close()
        assert set(aliases) == {"router-alpha", "router-beta"}
        assert all(collection.startswith(f"{alias}__") for alias, collection in aliases.items())
        with httpx.Client(base_url=start_service(settings), timeout=30) as c:
            assert c.post("/v1/sets/alpha/classify", json={"query": RUST}).json()["route"] == "coding"
            assert c.post("/v1/sets/beta/classify", json={"query": RUST}).json()["route"] == "maths"


@pytest.mark.parametrize(
    ("query", "route"),
    [
        ("I can't connect to the VPN from my hotel", "network"),
        ("my laptop screen flickers", "hardware"),
        ("I need a licence for Photoshop", "software"),
        ("please reset my password", "accounts"),
        ("How do I use async with Rust?", "default"),  # the default set's coding, not the helpdesk's
    ],
)
def test_the_shipped_second_set_routes_its_own_requests(
    tmp_path: Path, embedder: Embedder, query: str, route: str
) -> None:
    """route-sets/it-helpdesk (compose's second set) routes helpdesk requests to its routes and
    another set's requests to its default agent."""
    store = EdgeStore(tmp_path / "data", "router-it-helpdesk")
    run_reindex(load_routes(SHIPPED_ROUTES.parent / "route-sets" / "it-helpdesk"), store, embedder)
    index = store.open_version(store.live_version() or "")
    try:
        assert Router(index, embedder).classify([query])[0].route == route
    finally:
        index.close()
        store.close()
