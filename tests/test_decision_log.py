"""The decision log in the running service, the same tests on SQLite and on a real PostgreSQL
server: what classify, batch, answer and chat completions record, the recording modes,
retention, dropped records, and feedback with its permissions."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from devkit.serving import settings_for
from router_core import Embedder, load_routes, run_reindex
from router_core.decision_log import DecisionLogSettings
from router_core.decision_log.store import DecisionStore
from router_core.store import EdgeStore
from service.security import AuthSettings, key_id
from service.settings import ServiceSettings
from tests import log_fixtures
from tests.conftest import ServiceFactory

log_url = log_fixtures.log_url
postgres_server = log_fixtures.postgres_server
KEY_A, KEY_B, ADMIN = "log-key-a-9f3k2", "log-key-b-7h1q8", "log-admin-4m2z"
CONFIDENT = "How do I use async with Rust?"  # coding, far over the threshold
OFF_TOPIC = "What's a good recipe for banana bread?"  # the default route


def log_settings(url: str, **changes: Any) -> DecisionLogSettings:
    return DecisionLogSettings(
        url=SecretStr(url) if not url.startswith("sqlite") else None,
        path=Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite") else None,
        **changes,
    )


@pytest.fixture
def indexed(tmp_path: Path, routes_dir: Path, embedder: Embedder) -> tuple[Path, Path]:
    """A private copy of the shipped routes, indexed."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    return routes_dir, data


def service_settings(indexed: tuple[Path, Path], log: DecisionLogSettings, **extra: Any) -> ServiceSettings:
    routes, data = indexed
    return settings_for(routes, data, decision_log=log, **extra)


def rows(url: str) -> list[dict[str, Any]]:
    """Every row of the log, oldest first, read with SQL (not through the code under test)."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = [dict(r) for r in conn.execute(sa.text("SELECT * FROM decisions ORDER BY id")).mappings()]
    engine.dispose()
    return found


def wait_rows(url: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The rows once the writer has written `count` of them."""
    deadline = time.monotonic() + timeout
    while True:
        found = rows(url)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def keyed() -> AuthSettings:
    return AuthSettings(api_keys=[SecretStr(KEY_A), SecretStr(KEY_B)], admin_token=SecretStr(ADMIN))


def test_every_endpoint_records_with_the_key_id_never_the_key(
    log_url: str, indexed: tuple[Path, Path], start_service: ServiceFactory
) -> None:
    """With `all`, classify, batch (one row per query), answer and chat completions are each
    recorded under their request id with the caller's key id, route, agent, reason, score,
    version and model; conversations keep their deciding turns; texts are cut to the query
    limit; no column holds the key."""
    settings = service_settings(indexed, log_settings(log_url, record="all"), auth=keyed())
    settings = settings.model_copy(update={"limits": settings.limits.model_copy(update={"max_query_chars": 60})})
    url = start_service(settings)
    long_text = "Please explain how I can share a HashMap between threads in Rust safely " * 2
    with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {KEY_A}"}) as c:
        one = c.post("/v1/classify", json={"query": CONFIDENT}, headers={"X-Request-ID": "rec-classify"})
        batch = c.post(
            "/v1/classify/batch", json={"queries": [CONFIDENT, OFF_TOPIC]}, headers={"X-Request-ID": "rec-batch"}
        )
        answer = c.post("/v1/answer", json={"query": OFF_TOPIC}, headers={"X-Request-ID": "rec-answer"})
        chat = c.post(
            "/v1/chat/completions",
            json={
                "model": "router",
                "messages": [
                    {"role": "user", "content": "What is 15% of 200?"},
                    {"role": "assistant", "content": "15% of 200 is 30."},
                    {"role": "user", "content": "and of 350?"},
                ],
            },
            headers={"X-Request-ID": "rec-chat"},
        )
        long = c.post(
            "/v1/answer",
            json={"messages": [{"role": "user", "content": long_text}]},
            headers={"X-Request-ID": "rec-long"},
        )
    assert all(r.status_code == 200 for r in (one, batch, answer, chat, long))
    found = {(r["request_id"], r["item"]): r for r in wait_rows(log_url, 6)}
    assert set(found) == {
        ("rec-classify", 0),
        ("rec-batch", 0),
        ("rec-batch", 1),
        ("rec-answer", 0),
        ("rec-chat", 0),
        ("rec-long", 0),
    }
    first = found[("rec-classify", 0)]
    expected = one.json()
    assert (first["route"], first["agent"], first["reason"], first["index_version"]) == (
        expected["route"],
        expected["agent"],
        expected["reason"],
        expected["index_version"],
    )
    assert abs(first["score"] - expected["score"]) < 1e-4 and first["model"].endswith("all-MiniLM-L6-v2")
    assert first["route_set"] == "default" and first["text"] == CONFIDENT and first["latency_ms"] > 0
    voted = list(expected["votes"])  # winner first: the runner-up is the next one (none: all k agreed)
    assert first["runner_up"] == (voted[1] if len(voted) > 1 else None)
    assert first["decided_by"] == "vote" and first["recorded_as"] == "sampled"
    assert found[("rec-batch", 1)]["runner_up"] is not None  # a fallback names the route it nearly took
    assert found[("rec-batch", 1)]["route"] == "default" and found[("rec-batch", 1)]["fallback"]
    assert (
        found[("rec-chat", 0)]["text"] == "and of 350?" and '"What is 15% of 200?"' in found[("rec-chat", 0)]["turns"]
    )
    assert found[("rec-long", 0)]["text"] == long_text[:60].strip()  # routed on its first 60 characters
    assert {r["caller"] for r in found.values()} == {key_id(KEY_A)}
    assert not [r for r in found.values() for v in r.values() if isinstance(v, str) and KEY_A in v]


def test_uncertain_mode_records_the_uncertain_and_feedback_records_the_rest(
    log_url: str, indexed: tuple[Path, Path], start_service: ServiceFactory
) -> None:
    """The default mode writes the fallback, not the confident decision; feedback on the
    confident one (kept in memory) records it with its feedback."""
    url = start_service(service_settings(indexed, log_settings(log_url)))
    with httpx.Client(base_url=url, timeout=60) as c:
        c.post("/v1/classify", json={"query": CONFIDENT}, headers={"X-Request-ID": "u-confident"})
        c.post("/v1/classify", json={"query": OFF_TOPIC}, headers={"X-Request-ID": "u-fallback"})
        written = wait_rows(log_url, 1)
        time.sleep(0.3)  # the writer would have written the confident one by now, were it selected
        assert [r["request_id"] for r in rows(log_url)] == ["u-fallback"]
        assert written[0]["recorded_as"] == "uncertain"
        given = c.post("/v1/feedback", json={"request_id": "u-confident", "correct": True})
    assert given.status_code == 200 and given.json() == {
        "request_id": "u-confident",
        "item": 0,
        "decided": "coding",
        "verdict": "correct",
        "expected": None,
        "recorded": True,
    }
    stored = {r["request_id"]: r for r in rows(log_url)}
    assert stored["u-confident"]["feedback"] == "correct" and stored["u-confident"]["recorded_as"] == "feedback"


def test_mode_none_stores_nothing(tmp_path: Path, indexed: tuple[Path, Path], start_service: ServiceFactory) -> None:
    """`record: none`: no database is created, feedback on any request is 404."""
    path = tmp_path / "off" / "decisions.sqlite3"
    url = start_service(service_settings(indexed, DecisionLogSettings(record="none", path=path)))
    with httpx.Client(base_url=url, timeout=60) as c:
        c.post("/v1/classify", json={"query": OFF_TOPIC}, headers={"X-Request-ID": "off-1"})
        given = c.post("/v1/feedback", json={"request_id": "off-1", "correct": False})
    assert given.status_code == 404 and "RECORD=none" in given.json()["detail"]
    assert not path.exists()


def test_feedback_permissions_idempotence_and_metrics(
    log_url: str, indexed: tuple[Path, Path], start_service: ServiceFactory
) -> None:
    """An API key gives feedback only on its own requests (another's is 404 like an unknown
    id); the admin token on any; the same feedback again is 200 and not counted twice, a
    different one 409; a route that does not exist is 400; /metrics counts feedback per route."""
    url = start_service(service_settings(indexed, log_settings(log_url), auth=keyed()))

    def client(key: str) -> httpx.Client:
        return httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {key}"})

    with client(KEY_A) as a, client(KEY_B) as b, client(ADMIN) as admin:
        a.post("/v1/classify", json={"query": OFF_TOPIC}, headers={"X-Request-ID": "perm-a"})
        a.post("/v1/classify", json={"query": CONFIDENT}, headers={"X-Request-ID": "perm-a2"})
        wrong_key = b.post("/v1/feedback", json={"request_id": "perm-a", "route": "maths"})
        unknown = a.post("/v1/feedback", json={"request_id": "never-seen", "correct": True})
        bad_route = a.post("/v1/feedback", json={"request_id": "perm-a", "route": "no-such-route"})
        both = a.post("/v1/feedback", json={"request_id": "perm-a", "correct": True, "route": "maths"})
        own = a.post("/v1/feedback", json={"request_id": "perm-a", "route": "maths", "source": "user"})
        again = a.post("/v1/feedback", json={"request_id": "perm-a", "route": "maths", "source": "user"})
        other = a.post("/v1/feedback", json={"request_id": "perm-a", "correct": True})
        by_admin = admin.post("/v1/feedback", json={"request_id": "perm-a2", "route": "default"})
        anonymous = httpx.post(f"{url}/v1/feedback", json={"request_id": "perm-a", "correct": True})
        metrics = a.get("/metrics").text
    assert wrong_key.status_code == 404 and unknown.status_code == 404
    assert wrong_key.json()["detail"] == unknown.json()["detail"].replace("never-seen", "perm-a")
    assert bad_route.status_code == 400 and "no-such-route" in bad_route.json()["detail"]
    assert both.status_code == 400
    assert own.status_code == 200 and own.json()["recorded"] is True and own.json()["expected"] == "maths"
    assert again.status_code == 200 and again.json()["recorded"] is False
    assert other.status_code == 409
    assert by_admin.status_code == 200 and by_admin.json()["expected"] == "default"
    assert anonymous.status_code == 401
    assert 'router_feedback_total{expected="maths",route="default",verdict="wrong"} 1.0' in metrics
    assert 'router_feedback_total{expected="default",route="coding",verdict="wrong"} 1.0' in metrics
    stored = {r["request_id"]: r for r in rows(log_url)}
    assert stored["perm-a"]["feedback_caller"] == key_id(KEY_A) and stored["perm-a"]["feedback_source"] == "user"


@pytest.mark.slow
def test_feedback_after_the_retention_is_404(
    log_url: str, indexed: tuple[Path, Path], start_service: ServiceFactory
) -> None:
    """A decision older than the retention period is gone: feedback on it is 404."""
    url = start_service(service_settings(indexed, log_settings(log_url, record="all", retention_days=1.5 / 86_400)))
    with httpx.Client(base_url=url, timeout=60) as c:
        c.post("/v1/classify", json={"query": CONFIDENT}, headers={"X-Request-ID": "ret-1"})
        wait_rows(log_url, 1)
        time.sleep(2.0)
        late = c.post("/v1/feedback", json={"request_id": "ret-1", "correct": True})
    assert late.status_code == 404


def test_a_stuck_database_drops_records_counts_them_and_requests_go_on(
    log_url: str, indexed: tuple[Path, Path], start_service: ServiceFactory
) -> None:
    """While another connection holds the table locked the writer waits; records beyond its
    queue are dropped and counted in /metrics, and every request is answered meanwhile."""
    url = start_service(service_settings(indexed, log_settings(log_url, record="all", queue_size=2)))
    DecisionStore.open(log_url, retention_s=86_400).close()  # the table exists (the service migrated it)
    engine = sa.create_engine(log_url)
    conn = engine.connect()
    if log_url.startswith("sqlite"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.begin()
        conn.execute(sa.text("LOCK TABLE decisions IN EXCLUSIVE MODE"))
    try:
        with httpx.Client(base_url=url, timeout=60) as c:
            answered = [c.post("/v1/classify", json={"query": CONFIDENT}).status_code for _ in range(8)]
            metrics = c.get("/metrics").text
    finally:
        conn.rollback()
        conn.close()
        engine.dispose()
    assert answered == [200] * 8
    dropped = [
        line for line in metrics.splitlines() if line.startswith('router_decision_log_dropped_total{why="queue_full"}')
    ]
    assert dropped and float(dropped[0].split()[-1]) >= 5


def test_a_sample_rate_records_the_share_its_request_ids_select(
    tmp_path: Path, indexed: tuple[Path, Path], start_service: ServiceFactory
) -> None:
    """`all` at `sample_rate` 0.25: a request is recorded exactly when the first 8 bytes of
    the BLAKE2b digest of "<request id>#<item>" fall in the first quarter of their range (the
    rule every replica applies alike), computed here on its own; sequential ids included."""
    url = f"sqlite:///{tmp_path / 'sampled.sqlite3'}"
    start = start_service(service_settings(indexed, log_settings(url, record="all", sample_rate=0.25)))
    ids = [f"sample-{i}" for i in range(40)]
    expected = {i for i in ids if int.from_bytes(hashlib.blake2b(f"{i}#0".encode(), digest_size=8).digest()) < 2**62}
    assert 0 < len(expected) < len(ids)  # the ids chosen here exercise both outcomes
    with httpx.Client(base_url=start, timeout=60) as c:
        for request_id in ids:
            assert c.post("/v1/classify", json={"query": CONFIDENT}, headers={"X-Request-ID": request_id}).is_success
    wait_rows(url, len(expected))
    time.sleep(0.3)  # the writer would have written more by now
    assert {r["request_id"] for r in rows(url)} == expected


def test_the_band_selects_a_confident_decision_near_its_threshold(
    tmp_path: Path, indexed: tuple[Path, Path], start_service: ServiceFactory
) -> None:
    """`uncertain` with a band wide enough to hold the confident decision's score records it
    as uncertain (the default band does not: see the test above)."""
    url = f"sqlite:///{tmp_path / 'band.sqlite3'}"
    start = start_service(service_settings(indexed, log_settings(url, record="uncertain", band=1.0)))
    with httpx.Client(base_url=start, timeout=60) as c:
        decided = c.post("/v1/classify", json={"query": CONFIDENT}, headers={"X-Request-ID": "band-1"}).json()
    assert decided["route"] == "coding" and not decided["fallback"]
    written = wait_rows(url, 1)
    assert [(r["request_id"], r["recorded_as"]) for r in written] == [("band-1", "uncertain")]
