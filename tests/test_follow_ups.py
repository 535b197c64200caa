"""A route set's follow-ups (`_follow_ups.yaml`, router_core.follow_ups): indexed with the
examples, never neighbours, and read by the conversation rule over HTTP (real model, real
embedded Qdrant Edge index, the real Litestar app)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from devkit.serving import SHIPPED_ROUTES, settings_for
from indexer.cli import main as indexer_main
from router_core import Embedder, load_routes, run_reindex
from router_core.store import EdgeStore
from tests.conftest import ServiceFactory

MATHS_EXAMPLE = next(iter(load_routes(SHIPPED_ROUTES).get("maths").examples))  # type: ignore[union-attr]
MATHS = [{"role": "user", "content": "What is 15% of 200?"}, {"role": "assistant", "content": "15% of 200 is 30."}]
# three content words, unrelated to the chat by cosine and claimed by no route: without the
# route set's follow-ups the rule takes it for an off-topic request
GRANDMOTHER = "could you explain that again more slowly for my grandmother"
# the last one is also a maths example: it is nearest to itself, and must never be listed as "nearer"
FOLLOW_UPS = ["can you explain that again more slowly for my grandma", "walk me through it once more", MATHS_EXAMPLE]


def write_follow_ups(routes: Path, texts: list[str]) -> None:
    (routes / "_follow_ups.yaml").write_text("follow_ups:\n" + "".join(f"  - {t!r}\n" for t in texts))


def classify(url: str, messages: list[dict[str, str]]) -> dict[str, object]:
    response = httpx.post(f"{url}/v1/classify", json={"messages": messages}, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_a_known_follow_up_is_carried_and_off_topic_still_falls_back(
    routes_dir: Path, tmp_path: Path, embedder: Embedder, start_service: ServiceFactory, shipped_url: str
) -> None:
    """Served over HTTP: the same request goes to the default route (off_topic) on the shipped
    routes, and stays with the conversation's route when the route set knows a follow-up like
    it; an off-topic question mid-chat still falls back."""
    chat = [*MATHS, {"role": "user", "content": GRANDMOTHER}]
    before = classify(shipped_url, chat)
    assert (before["route"], before["reason"]) == ("default", "off_topic")
    write_follow_ups(routes_dir, FOLLOW_UPS)
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    url = start_service(settings_for(routes_dir, data))
    after = classify(url, chat)
    assert after["route"] == "maths"
    assert after["reason"] in ("context", "continued")
    off = classify(url, [*MATHS, {"role": "user", "content": "what is a good banana bread recipe"}])
    assert (off["route"], off["reason"]) == ("default", "off_topic")
    alone = classify(url, [{"role": "user", "content": GRANDMOTHER}])  # a single message: the vote alone
    assert alone["route"] == before["route"] == "default"
    # the follow-ups are no route's examples: never the "nearer example of another route"
    listed = httpx.get(f"{url}/v1/routes/maths/examples", timeout=30).json()
    assert listed["examples"]
    assert all(e["nearer"] is None or e["nearer"]["route"] != "_follow-up" for e in listed["examples"])
    assert httpx.get(f"{url}/v1/routes/_follow-up/examples", timeout=30).status_code == 404


def test_follow_ups_are_embedded_once_and_never_neighbours(
    routes_dir: Path, tmp_path: Path, embedder: Embedder
) -> None:
    """Adding follow-ups to an indexed route set embeds only them (the examples' vectors are
    reused); searching a follow-up's own text never returns it; removing them drops them."""
    data = tmp_path / "data"
    first = run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    write_follow_ups(routes_dir, FOLLOW_UPS)
    second = run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    assert (second.embedded, second.reused) == (len(FOLLOW_UPS), first.embedded)
    assert (second.examples, second.follow_ups) == (first.examples, len(FOLLOW_UPS))
    store = EdgeStore(data)
    index = store.open_version(store.live_version() or "")
    try:
        assert index.table.follow_ups == tuple(FOLLOW_UPS)
        assert index.follow_ups is not None
        assert index.follow_ups.shape == (len(FOLLOW_UPS), embedder.dimension)
        vectors = embedder.encode_queries(FOLLOW_UPS)
        np.testing.assert_allclose(index.follow_ups, vectors, atol=1e-5)
        hits = index.searcher.search(vectors, 10)
        assert all(h.route != "_follow-up" for row in hits for h in row)
        assert all(h.text not in FOLLOW_UPS[:2] for row in hits for h in row)  # the first two are no example
        assert hits[2][0].route == "maths"  # the third is also a maths example: found as that one
    finally:
        index.close()
        store.close()
    (routes_dir / "_follow_ups.yaml").unlink()
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    store = EdgeStore(data)
    index = store.open_version(store.live_version() or "")
    try:
        assert index.table.follow_ups == ()
        assert index.follow_ups is not None
        assert index.follow_ups.shape[0] == 0
    finally:
        index.close()
        store.close()


def test_hygiene_never_takes_the_follow_ups_for_a_route(routes_dir: Path, tmp_path: Path, embedder: Embedder) -> None:
    """`indexer hygiene` reads the live version's stored vectors: its follow-ups (one of them a
    copy of a maths example) are neither a thin route nor a near-duplicate of an example."""
    write_follow_ups(routes_dir, FOLLOW_UPS)
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    report_path = tmp_path / "hygiene.json"
    where = ["--routes", str(routes_dir), "--data-dir", str(data), "--json", str(report_path)]
    assert indexer_main(["hygiene", *where, "--min-examples", "5"], out=io.StringIO()) == 0
    text = report_path.read_text()
    assert "_follow-up" not in text
    assert json.loads(text)["report"]["routes"] == len(load_routes(routes_dir).routes)


@pytest.mark.slow
def test_calibrate_writes_no_more_follow_ups_than_the_file_limit_holds(
    routes_dir: Path, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A conversation file with more follow-ups than `_follow_ups.yaml` may hold (the routes
    directory's file limit): calibrate --write keeps as many as fit, in file order, and the
    directory still loads."""
    limit = 8_000
    monkeypatch.setenv("ROUTER_ROUTE_FILES__MAX_FILE_BYTES", str(limit))
    chats = []
    for i in range(150):
        messages = [
            {"role": "user", "content": f"What is {i + 3}% of {200 + i}?", "route": "maths"},
            {"role": "assistant", "content": "Here is the result."},
            {
                "role": "user",
                "content": f"and could you also show me the working for case number {i}?",
                "route": "maths",
            },
        ]
        chats.append(json.dumps({"id": f"c{i}", "messages": messages}))
    conversations = tmp_path / "chats.jsonl"
    conversations.write_text("\n".join(chats) + "\n")
    off_topic = tmp_path / "oos.jsonl"
    off_topic.write_text(json.dumps({"text": "what is a good banana bread recipe", "label": "oos"}) + "\n")
    data = tmp_path / "data"
    where = ["--routes", str(routes_dir), "--data-dir", str(data), "--quiet"]
    assert indexer_main(["reindex", *where], out=io.StringIO(), embedder=embedder) == 0
    out = io.StringIO()
    args = ["calibrate", str(conversations), "--off-topic", str(off_topic), "--write", *where]
    assert indexer_main(args, out=out, embedder=embedder) == 0, out.getvalue()
    written = routes_dir / "_follow_ups.yaml"
    assert written.stat().st_size <= limit
    kept = load_routes(routes_dir).follow_ups
    assert 0 < len(kept) < 150
    assert kept[0] == "and could you also show me the working for case number 0?"
    assert f"wrote the {len(kept)} follow-ups of chats.jsonl" in out.getvalue()
