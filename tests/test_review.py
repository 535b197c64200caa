"""Review of logged decisions over the API and from the CLI, on SQLite and PostgreSQL: the
queues, a preview with its diff and guard, saving exactly what was previewed, held-out
evaluation queries, marks, admin-only access, and `python -m indexer review` end to end."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from devkit.serving import SHIPPED_EVALS, settings_for
from devkit.waiting import wait_for
from indexer.cli import main as indexer_main
from router_core import Embedder, load_routes, run_reindex
from router_core.decision_log import DecisionLogSettings
from router_core.labelled_conversations import holds_conversations
from router_core.store import EdgeStore
from service.security import AuthSettings
from tests import log_fixtures
from tests.conftest import ServiceFactory

log_url = log_fixtures.log_url
postgres_server = log_fixtures.postgres_server
MISROUTED = "how many legs do three spiders have altogether"  # maths, but below every threshold
NEAR = "how many legs do four spiders have"
OFF_TOPIC = "What's a good recipe for banana bread?"


def log_config(url: str) -> DecisionLogSettings:
    if url.startswith("sqlite"):
        return DecisionLogSettings(record="all", path=Path(url.removeprefix("sqlite:///")))
    return DecisionLogSettings(record="all", url=SecretStr(url))


@pytest.fixture
def workspace(tmp_path: Path, routes_dir: Path, embedder: Embedder) -> tuple[Path, Path, Path]:
    """Routes (indexed) and evals of its own: (routes, data, evals)."""
    data, evals = tmp_path / "data", tmp_path / "evals"
    shutil.copytree(SHIPPED_EVALS, evals)
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    return routes_dir, data, evals


def misroute(c: httpx.Client, request_id: str, text: str = MISROUTED, route: str = "maths") -> int:
    """Classify `text`, say it should have gone to `route`; its id in the feedback queue."""
    assert (
        c.post("/v1/classify", json={"query": text}, headers={"X-Request-ID": request_id}).json()["route"] == "default"
    )
    assert c.post("/v1/feedback", json={"request_id": request_id, "route": route}).status_code == 200
    items = c.get("/admin/review", params={"queue": "feedback"}).json()["items"]
    return int(next(i["id"] for i in items if i["request_id"] == request_id))


def test_preview_then_accept_writes_what_was_shown_and_the_reindex_serves_it(
    log_url: str, workspace: tuple[Path, Path, Path], start_service: ServiceFactory
) -> None:
    """The preview shows the route file's diff and the guard ("fixes 1 reviewed query and breaks
    0 evaluation queries", figures before/after); a stale token is 409 and writes nothing; the
    right token saves it, the decision leaves the feedback queue, and after a re-index the
    reviewed queue shows before default, now maths."""
    routes, data, evals = workspace
    url = start_service(settings_for(routes, data, evals_dir=evals, decision_log=log_config(log_url)))
    before = (routes / "maths.yaml").read_text()
    with httpx.Client(base_url=url, timeout=60) as c:
        c.post("/v1/classify", json={"query": NEAR}, headers={"X-Request-ID": "near-1"})
        ident = misroute(c, "spiders-api")
        nearby = c.get("/admin/review", params={"queue": "neighbours"}).json()["items"]
        preview = c.post("/admin/review/preview", json={"ids": [ident], "action": "example"}).json()
        stale = c.post("/admin/review/accept", json={"ids": [ident], "action": "example", "token": "0" * 32})
        assert (routes / "maths.yaml").read_text() == before
        saved = c.post("/admin/review/accept", json={"ids": [ident], "action": "example", "token": preview["token"]})
        again = c.post("/admin/review/preview", json={"ids": [ident], "action": "example"}).json()
        queue_after = c.get("/admin/review", params={"queue": "feedback"}).json()["items"]
        assert c.post("/admin/reindex").json()["changed"] is True
        reviewed = c.get("/admin/review", params={"queue": "reviewed"}).json()["items"]
        now = c.post("/v1/classify", json={"query": MISROUTED}).json()
    near = next(i for i in nearby if i["request_id"] == "near-1")["near"]
    assert near["anchor_id"] == ident and near["anchor_route"] == "maths" and near["if_added"] == "maths"
    assert preview["route"] == "maths" and preview["file"] == "routes/maths.yaml" and preview["added"] == [MISROUTED]
    assert f'+  - "{MISROUTED}"' in preview["diff"] and preview["rewritten"] is False
    guard = preview["guard"]
    assert guard["summary"] == "this change fixes 1 reviewed query and breaks 0 evaluation queries"
    queries = [f.read_text().splitlines() for f in evals.glob("*.jsonl")]  # every file of labelled queries
    shipped = sum(len(lines) for lines in queries if not holds_conversations(lines))  # (conversations: not read)
    assert guard["eval_before"]["queries"] == shipped and guard["eval_after"]["queries"] == shipped
    assert stale.status_code == 409
    assert saved.status_code == 200 and saved.json()["marked"] == 1
    assert (routes / "maths.yaml").read_text() == before + f'  - "{MISROUTED}"\n'
    assert again["changed"] is False  # the file holds it now
    assert all(i["id"] != ident for i in queue_after)
    [item] = [i for i in reviewed if i["id"] == ident]
    assert (item["route"], item["live"]["route"], item["review_state"]) == ("default", "maths", "accepted")
    assert now["route"] == "maths"


def test_eval_action_holds_out_and_refuses_leaks_both_ways(
    log_url: str, workspace: tuple[Path, Path, Path], start_service: ServiceFactory
) -> None:
    """Adding to the evaluation file appends a labelled line (`oos` for the default route); a
    held-out query cannot then become an example, and an example cannot become an evaluation
    query; mark right and dismiss take decisions out of the queues."""
    routes, data, evals = workspace
    url = start_service(settings_for(routes, data, evals_dir=evals, decision_log=log_config(log_url)))
    example = load_routes(routes).routes[0].examples[0]
    with httpx.Client(base_url=url, timeout=60) as c:
        held = misroute(c, "held-1")
        c.post("/v1/classify", json={"query": example}, headers={"X-Request-ID": "example-1"})
        c.post("/v1/feedback", json={"request_id": "example-1", "correct": False})
        c.post("/v1/classify", json={"query": OFF_TOPIC}, headers={"X-Request-ID": "off-1"})
        c.post("/v1/feedback", json={"request_id": "off-1", "correct": False})
        items = {i["request_id"]: i["id"] for i in c.get("/admin/review", params={"queue": "feedback"}).json()["items"]}
        preview = c.post("/admin/review/preview", json={"ids": [held], "action": "eval"}).json()
        saved = c.post("/admin/review/accept", json={"ids": [held], "action": "eval", "token": preview["token"]})
        leak = c.post("/admin/review/preview", json={"ids": [held], "action": "example", "route": "maths"})
        known = c.post("/admin/review/preview", json={"ids": [items["example-1"]], "action": "eval", "route": "coding"})
        default = c.post(
            "/admin/review/preview", json={"ids": [items["off-1"]], "action": "example", "route": "default"}
        )
        marked = c.post("/admin/review/mark", json={"ids": [items["off-1"], items["example-1"]], "state": "dismissed"})
        unknown = c.post("/admin/review/mark", json={"ids": [987654], "state": "right"})
        left = c.get("/admin/review", params={"queue": "feedback"}).json()["items"]
    assert preview["guard"] is None and preview["file"] == "evals/reviewed.jsonl"
    assert saved.status_code == 200
    assert json.loads((evals / "reviewed.jsonl").read_text()) == {"text": MISROUTED, "label": "maths"}
    assert leak.status_code == 409 and "held-out" in leak.json()["detail"]
    assert known.status_code == 409 and "held out" in known.json()["detail"]
    assert default.status_code == 409 and "not a route with examples" in default.json()["detail"]
    assert marked.json() == {"marked": 2} and left == []
    assert unknown.status_code == 404


def test_review_is_admin_only(workspace: tuple[Path, Path, Path], start_service: ServiceFactory) -> None:
    """Queues hold user texts: a public key is 403, no key 401, the admin token 200."""
    routes, data, evals = workspace
    auth = AuthSettings(api_keys=[SecretStr("rv-key")], admin_token=SecretStr("rv-admin"))
    url = start_service(settings_for(routes, data, evals_dir=evals, auth=auth))

    def get(key: str | None) -> int:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.get(f"{url}/admin/review", headers=headers, timeout=30).status_code

    assert (get(None), get("rv-key"), get("rv-admin")) == (401, 403, 200)


def run_cli(args: list[str], embedder: Embedder) -> tuple[int, str]:
    out = io.StringIO()
    code = indexer_main(args, out=out, embedder=embedder)
    return code, out.getvalue()


def test_cli_review_lists_accepts_and_exports(
    log_url: str,
    workspace: tuple[Path, Path, Path],
    start_service: ServiceFactory,
    embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`python -m indexer review`: list shows the misroute, accept prints the diff and the guard
    and writes only with --write, the re-index then routes it right, export writes labelled
    JSON Lines that `eval` reads."""
    routes, data, evals = workspace
    config = log_config(log_url)
    url = start_service(settings_for(routes, data, evals_dir=evals, decision_log=config))
    with httpx.Client(base_url=url, timeout=60) as c:
        ident = misroute(c, "cli-1")
        c.post("/v1/classify", json={"query": "How do I use async with Rust?"}, headers={"X-Request-ID": "cli-2"})
        c.post("/v1/feedback", json={"request_id": "cli-2", "correct": True})
    if config.url is not None:
        monkeypatch.setenv("ROUTER_DECISION_LOG__URL", config.url.get_secret_value())
    else:
        monkeypatch.setenv("ROUTER_DECISION_LOG__PATH", str(config.path))
    where: list[str] = ["--routes", str(routes), "--data-dir", str(data)]
    before = (routes / "maths.yaml").read_text()

    code, listed = run_cli(["review", "list", *where], embedder)
    assert code == 0 and f"{ident:>6}" in listed and MISROUTED in listed and "should be maths" in listed
    code, shown = run_cli(["review", "accept", str(ident), "--evals", str(evals), *where], embedder)
    assert code == 0 and f'+  - "{MISROUTED}"' in shown
    assert "guard: this change fixes 1 reviewed query and breaks 0 evaluation queries" in shown
    assert "nothing was written" in shown and (routes / "maths.yaml").read_text() == before
    code, saved = run_cli(["review", "accept", str(ident), "--evals", str(evals), "--write", *where], embedder)
    assert code == 0 and "saved routes/maths.yaml" in saved and re.search(r"next: \S*python -m indexer reindex", saved)
    assert run_cli(["reindex", *where], embedder)[0] == 0
    out = evals.parent / "labelled.jsonl"
    code, _ = run_cli(["review", "export", "--out", str(out), *where], embedder)
    rows: list[dict[str, Any]] = [json.loads(line) for line in out.read_text().splitlines()]
    assert code == 0 and {"text": MISROUTED, "label": "maths"} in rows
    assert {"text": "How do I use async with Rust?", "label": "coding"} in rows
    code, scored = run_cli(["eval", str(out), *where], embedder)
    assert code == 0 and "accuracy" in scored
    code, refused = run_cli(["review", "right", "424242", *where], embedder)
    assert code == 2 and "424242" not in refused  # the message goes to stderr; nothing printed here
    with httpx.Client(base_url=url, timeout=60) as c:  # the service follows the new version within its reload interval
        wait_for(
            lambda: c.post("/v1/classify", json={"query": MISROUTED}).json()["route"] == "maths", 30, "the re-index"
        )
