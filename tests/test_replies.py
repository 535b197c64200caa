"""A route set's replies (`_replies.yaml`, router_core.replies): agent messages and how often a
new topic followed them. Validated as route files are, indexed with the examples but never
neighbours, learnt by `indexer calibrate` (each conversation scored against the others'
replies), and read by the conversation rule over HTTP (real model, real embedded Qdrant Edge
index, the real Litestar app)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from devkit.serving import settings_for
from indexer.cli import main as indexer_main
from router_core import Embedder, RoutesInvalid, load_routes, run_reindex
from router_core.constants import REPLY_SIMILARITY
from router_core.replies import Reply, ReplyBank, new_topic_chance
from router_core.store import EdgeStore
from tests.conftest import ServiceFactory

CLOSER = "Glad that works now. Is there anything else I can help you with?"
CODING_CHAT = [
    {"role": "user", "content": "My Python script raises a KeyError when I read the config dictionary"},
    {"role": "assistant", "content": "Use dict.get with a default, or check the key with `in` first."},
    {"role": "user", "content": "That fixed the KeyError, thanks"},
    {"role": "assistant", "content": CLOSER},
]
# a maths question its own vote routes with modest confidence: after a coding chat the rule's
# fixed switch chance keeps the coding topic, unless the reply before it tells a new topic is likely
NEW_QUESTION = "what is the derivative of x squared"


def write_replies(routes: Path, entries: list[tuple[str, int, int]]) -> None:
    lines = "".join(f"  - {{text: {t!r}, new_topic: {n}, same_topic: {s}}}\n" for t, n, s in entries)
    (routes / "_replies.yaml").write_text("replies:\n" + lines)


def classify(url: str, messages: list[dict[str, str]]) -> dict[str, object]:
    response = httpx.post(f"{url}/v1/classify", json={"messages": messages}, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_the_chance_is_the_share_of_new_topics_after_the_nearest_replies_weighed_by_their_counts() -> None:
    """k nearest replies, each weighing its counts; a reply counting nothing is never among them,
    nor one under REPLY_SIMILARITY (an unlike agent message gets no estimate, not a guess)."""
    assert REPLY_SIMILARITY == 0.6
    vectors = np.eye(4, dtype=np.float32)
    bank = ReplyBank(vectors, np.array([9.0, 0.0, 1.0, 5.0]), np.array([10.0, 0.0, 4.0, 0.0]))

    def unit(*xs: float) -> np.ndarray:
        v = np.array([xs], np.float32)
        return v / np.linalg.norm(v)

    both = unit(0.7, 0.0, 0.714, 0.0)  # cosine ~0.70 to row 0 and ~0.71 to row 2
    assert new_topic_chance(both, bank, k=2)[0] == pytest.approx(10 / 14)
    assert new_topic_chance(both, bank, k=1)[0] == pytest.approx(1 / 4)  # row 2 is the nearer
    assert new_topic_chance(both, bank, k=10)[0] == pytest.approx(10 / 14)  # only rows 0 and 2 count
    one = unit(0.95, 0.0, 0.312, 0.0)  # row 2 at cosine ~0.31: too unlike to take part
    assert new_topic_chance(one, bank, k=2)[0] == pytest.approx(9 / 10)
    assert np.isnan(new_topic_chance(unit(0.0, 1.0, 0.0, 0.0), bank)[0])  # like row 1 only, which counts nothing
    assert np.isnan(new_topic_chance(both, None)[0])
    assert np.isnan(new_topic_chance(both, ReplyBank(vectors, np.zeros(4), np.zeros(4)))[0])


def test_the_replies_file_is_validated_and_is_no_route(routes_dir: Path) -> None:
    """A valid `_replies.yaml` is read (whitespace collapsed) and is not taken for a route file;
    an entry counting nothing, a repeated or empty text, a negative count and an unknown field
    are each refused naming the entry, and nothing is loaded."""
    write_replies(routes_dir, [(CLOSER + "  ", 9, 1), ("How many people?", 0, 4)])
    table = load_routes(routes_dir)
    assert table.replies == (Reply(CLOSER, 9, 1), Reply("How many people?", 0, 4))
    assert "_replies" not in {r.name for r in table.routes}
    assert table.to_dict()["replies"] == {CLOSER: [9, 1], "How many people?": [0, 4]}
    write_replies(routes_dir, [(CLOSER, 0, 0), ("how many PEOPLE?", 1, 1), ("How many people?", 1, 1), (" ", 1, 0)])
    with pytest.raises(RoutesInvalid) as bad:
        load_routes(routes_dir)
    where = {(p.file, p.field) for p in bad.value.problems}
    assert where == {("_replies.yaml", "replies.0"), ("_replies.yaml", "replies.2"), ("_replies.yaml", "replies.3")}
    (routes_dir / "_replies.yaml").write_text("replies:\n  - {text: hi, new_topic: -1, same_topic: 2, colour: red}\n")
    with pytest.raises(RoutesInvalid) as worse:
        load_routes(routes_dir)
    text = str(worse.value)
    assert "new_topic" in text and "colour" in text


def test_a_reply_that_tells_a_new_topic_lets_the_next_message_change_it(
    routes_dir: Path, tmp_path: Path, embedder: Embedder, start_service: ServiceFactory, shipped_url: str
) -> None:
    """Served over HTTP: after a coding chat closed by "anything else?", a modest maths question
    stays with coding on the shipped routes (a fixed switch chance) and goes to maths when the
    route set's replies say a new topic followed such a reply 9 times in 10; a reply after which
    the topic stayed leaves the rule as it was. The re-index counts the replies apart from the
    examples, and none is ever a neighbour."""
    chat = [*CODING_CHAT, {"role": "user", "content": NEW_QUESTION}]
    alone = classify(shipped_url, [{"role": "user", "content": NEW_QUESTION}])
    assert alone["route"] == "maths"
    before = classify(shipped_url, chat)
    assert before["route"] == "coding"
    write_replies(routes_dir, [(CLOSER, 9, 1)])
    data = tmp_path / "data"
    report = run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    assert (report.replies, report.examples) == (1, sum(len(r.examples) for r in load_routes(routes_dir).routes))
    url = start_service(settings_for(routes_dir, data))
    after = classify(url, chat)
    assert after["route"] == "maths" and after["reason"] in ("vote", "standalone")
    hits = httpx.post(f"{url}/v1/classify", json={"query": CLOSER, "explain": True}, timeout=30).json()
    assert hits["neighbours"] and all(n["route"] != "_reply" for n in hits["neighbours"]), hits

    write_replies(routes_dir, [(CLOSER, 0, 10)])
    staying = tmp_path / "staying"
    run_reindex(load_routes(routes_dir), EdgeStore(staying), embedder)
    stays = classify(start_service(settings_for(routes_dir, staying)), chat)
    assert stays["route"] == "coding"


def _chat(i: int, closing: bool) -> str:
    """A labelled conversation: a maths question, the agent's answer, then either a new coding
    topic after a closing reply or a maths follow-up after a question back."""
    reply = CLOSER if closing else "Do you want the steps as well?"
    second = (
        {"role": "user", "content": f"Why does my Python loop {i} never stop?", "route": "coding"}
        if closing
        else {"role": "user", "content": f"Yes, show the steps for case {i}", "route": "maths"}
    )
    messages = [
        {"role": "user", "content": f"What is {i + 3}% of {200 + i}?", "route": "maths"},
        {"role": "assistant", "content": f"Here is the result. {reply}"},
        second,
    ]
    return json.dumps({"id": f"c{i}", "messages": messages})


def test_calibrate_learns_the_replies_of_the_file_and_scores_each_turn_without_its_own(
    routes_dir: Path, tmp_path: Path, embedder: Embedder
) -> None:
    """`calibrate --write` counts, for each agent message before a labelled user turn, whether
    that turn opened a new topic (one entry per distinct message, counted over the conversations),
    writes them to `_replies.yaml` (the re-index serves them), and says so; a conversation's own
    reply is never the evidence for its own turns (held out)."""
    conversations = tmp_path / "chats.jsonl"
    conversations.write_text("\n".join(_chat(i, closing=i % 2 == 0) for i in range(12)) + "\n")
    data = tmp_path / "data"
    where = ["--routes", str(routes_dir), "--data-dir", str(data), "--quiet"]
    assert indexer_main(["reindex", *where], out=io.StringIO(), embedder=embedder) == 0
    out = io.StringIO()
    assert indexer_main(["calibrate", str(conversations), "--write", *where], out=out, embedder=embedder) == 0
    assert "replies: 2 learnt from the file" in out.getvalue()
    assert "wrote the 2 replies of chats.jsonl" in out.getvalue()
    assert set(load_routes(routes_dir).replies) == {
        Reply(f"Here is the result. {CLOSER}", 6, 0),
        Reply("Here is the result. Do you want the steps as well?", 0, 6),
    }
    report = run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    assert report.replies == 2

    # held out: a conversation never meets its own reply; a reply like it from another one counts
    from indexer.conversations import load_conversations, prepare
    from indexer.reply_bank import held_out_chances, reply_owners

    store = EdgeStore(data)
    index = store.open_version(store.live_version() or "")
    try:
        chats = load_conversations(conversations)
        params = index.table.params

        def chances(picked: list[int]) -> list[float | None]:
            part = prepare([chats[i] for i in picked], embedder, index, params, max_window=6, with_context=False)
            held = held_out_chances(part, part, reply_owners(part, params))
            return [c.get(lay.messages[-2].text) for lay, c in zip(part.layouts, held, strict=True) if lay.users > 1]

        assert chances([0]) == [None]  # its own reply is the only one: no estimate, not 1.0
        assert chances([0, 2]) == [1.0, 1.0]  # both closed: each meets the other's count of the reply
        assert chances([1, 3]) == [0.0, 0.0]  # both stayed on the topic after a question back
        assert chances([0, 1]) == [None, None]  # each reply unlike the other's: no estimate
    finally:
        index.close()
        store.close()
