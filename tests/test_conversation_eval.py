"""Evaluating and calibrating conversation routing, and the hybrid band's simulation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devkit.serving import SHIPPED_ROUTES
from indexer.conversation_calibration import calibrate_conversations
from indexer.conversations import LabelledTurn, load_conversations, prepare, score_turns
from indexer.hybrid import BandSimulator, calibrate_band
from indexer.labelled import LabelledDataInvalid
from indexer.off_topic_insertion import fold_of, insert_off_topic, interrupt_with_off_topic
from router_core import Embedder, load_routes, run_reindex
from router_core.decision import Decision
from router_core.params import ConversationParams, DecisionParams, LLMRoutingParams
from router_core.store import EdgeStore


def write_conversations(path: Path, conversations: list[list[tuple[str, str, str | None]]]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i, turns in enumerate(conversations):
            messages = [
                {"role": role, "content": text, **({"route": route} if route else {})} for role, text, route in turns
            ]
            fh.write(json.dumps({"id": f"c{i}", "messages": messages}) + "\n")
    return path


CHATS = [
    [
        ("user", "What is 15% of 200?", "maths"),
        ("assistant", "15% of 200 is 30.", None),
        ("user", "and of 350?", "maths"),
        ("assistant", "52.5.", None),
        ("user", "How do I reverse a string in Rust?", "coding"),
        ("assistant", "Use chars().rev().collect().", None),
        ("user", "and in Python?", "coding"),
    ],
    [
        ("user", "Solve 2x + 3 = 7 for x", "maths"),
        ("assistant", "x = 2.", None),
        ("user", "show me the steps please", "maths"),
        ("assistant", "Subtract 3, then divide by 2.", None),
        ("user", "thanks, what about 5x - 4 = 21?", "maths"),
    ],
    [
        ("user", "How do I share a HashMap between threads in Rust?", "coding"),
        ("assistant", "Wrap it in Arc<Mutex<...>>.", None),
        ("user", "can you show a full example?", "coding"),
    ],
]


def test_turn_types_follow_the_data_sets_definitions(tmp_path: Path) -> None:
    """First of a domain, follow-up and switch are derived from the labels as the SGD README defines them."""
    [c, *_] = load_conversations(write_conversations(tmp_path / "c.jsonl", CHATS))
    kinds = [(label.route, label.first_of_domain, label.switch) for label in c.labels]
    assert kinds == [("maths", True, False), ("maths", False, False), ("coding", True, True), ("coding", False, False)]


def test_a_domain_named_in_a_handover_turn_makes_the_next_turn_a_follow_up(tmp_path: Path) -> None:
    """A route first seen in an unlabelled two-domain turn (`domains`) is not first-of-domain later."""
    path = tmp_path / "h.jsonl"
    messages = [
        {"role": "user", "content": "find a movie", "route": "media"},
        {"role": "user", "content": "thanks, and the weather?", "domains": ["media", "weather"]},
        {"role": "user", "content": "long beach", "route": "weather"},
    ]
    path.write_text(json.dumps({"id": "h", "messages": messages}) + "\n", encoding="utf-8")
    [c] = load_conversations(path)
    assert [(lab.first_of_domain, lab.switch) for lab in c.labels] == [(True, False), (False, True)]


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("{not json", "invalid JSON"),
        (json.dumps({"id": "x"}), "'messages' list"),
        (json.dumps({"messages": [{"role": "robot", "content": "hi"}]}), "needs a role"),
        (json.dumps({"messages": [{"role": "assistant", "content": "hi", "route": "maths"}]}), "on a user message"),
    ],
)
def test_bad_conversation_files_name_the_line(tmp_path: Path, line: str, needle: str) -> None:
    """A malformed conversations file is refused, naming the line and the problem."""
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(LabelledDataInvalid, match=needle) as info:
        load_conversations(path)
    assert "line 1" in str(info.value)


@pytest.mark.slow
def test_calibration_beats_the_last_message_and_keeps_off_topic_out(tmp_path: Path, embedder: Embedder) -> None:
    """On real chats over the shipped routes, the calibrated rule routes follow-ups the last
    message alone cannot, and sends the inserted off-topic queries to the default route."""
    data = tmp_path / "data"
    run_reindex(load_routes(SHIPPED_ROUTES), EdgeStore(data), embedder)
    store = EdgeStore(data)
    index = store.open_version(store.live_version() or "")
    try:
        params = index.table.params
        names = [r.name for r in index.table.routes]
        chats = load_conversations(write_conversations(tmp_path / "c.jsonl", CHATS))
        off_topic = insert_off_topic(
            chats, ["What is a good banana bread recipe?", "Who won the football world cup in 2010?"]
        )
        assert [c.labels[0].route for c in off_topic] == ["oos", "oos"]

        def prep(cs: list) -> object:
            return prepare(cs, embedder, index, params, max_window=10, with_context=True)

        result = calibrate_conversations(
            prep(chats), params, names, ConversationParams(), off_topic=prep(off_topic), values={"window": (4, 8)}
        )
    finally:
        index.close()
        store.close()
    assert result.chosen.off_topic is not None and result.chosen.off_topic >= 0.8
    assert result.chosen.scores.follow_up > result.last_message.scores.follow_up
    assert result.chosen.scores.all == 1.0
    # window overridden; floor_below, assistant_weight fixed; switch, context_weight, unrelated_switch, the
    # standalone step (with follow_up_similarity: the file's follow-ups are learnt)
    assert result.settings == 2 * 4 * 4 * 3 * 4 * 3 * 4 * 4
    assert "floor_below" not in result.searched and "switch" in result.searched
    assert "follow_up_similarity" in result.searched
    assert {"and of 350?", "can you show a full example?"} <= set(result.follow_ups)
    assert "What is 15% of 200?" not in result.follow_ups  # a first turn of its domain
    cv = result.cross_validated
    assert cv is not None and cv.scores.counts == result.chosen.scores.counts  # every turn scored once, held out


def test_folds_split_by_conversation_and_keep_insertions_with_their_conversation(tmp_path: Path) -> None:
    """Cross-validation folds are a stable hash of the conversation id; an off-topic turn
    inserted into a conversation, and an interrupted copy of it, fall in that conversation's fold."""
    chats = load_conversations(write_conversations(tmp_path / "c.jsonl", CHATS * 3))
    inserted = insert_off_topic(chats, [f"off-topic {i}" for i in range(20)])
    plain, interrupted = interrupt_with_off_topic(chats, ["off-topic"] * 20, reply="Sorry.")
    for c in [*inserted, *plain, *interrupted]:
        base = c.labels[0].conversation.split("+")[0]
        assert fold_of(c.id) == fold_of(base) == fold_of(base, 5)
    assert len({fold_of(f"conversation {i}") for i in range(100)}) == 5


def test_an_interrupted_turn_keeps_its_label_after_the_off_topic_exchange(tmp_path: Path) -> None:
    """interrupt_with_off_topic puts the query and the reply just before a later labelled turn,
    which keeps its route and turn type; the uninterrupted copy ends at the same turn."""
    chats = load_conversations(write_conversations(tmp_path / "c.jsonl", CHATS))
    plain, interrupted = interrupt_with_off_topic(chats, ["banana bread?"] * 5, reply="Sorry, I can't.", seed=3)
    for p, i in zip(plain, interrupted, strict=True):
        [pl], [il] = p.labels, i.labels
        assert (pl.route, pl.first_of_domain, pl.switch) == (il.route, il.first_of_domain, il.switch)
        assert p.messages[pl.position].text == i.messages[il.position].text
        assert [(t.role, t.text) for t in i.messages[il.position - 2 : il.position]] == [
            ("user", "banana bread?"),
            ("assistant", "Sorry, I can't."),
        ]
        assert [t.index for t in i.messages] == list(range(len(i.messages)))


def test_scores_count_out_of_scope_turns_as_right_when_they_fall_back() -> None:
    """An `oos` label is right when the turn went to the default route."""
    labels = [
        LabelledTurn("a", 0, "maths", True, False),
        LabelledTurn("a", 2, "oos", False, True),
    ]
    scores = score_turns(["maths", "default"], labels, "default")
    assert (scores.all, scores.first_of_domain, scores.follow_up, scores.switch) == (1.0, 1.0, 1.0, 1.0)


# -- the hybrid band's simulation ----------------------------------------------------------------
def decision(route: str, score: float, lead: float, ranking: tuple[str, ...], fallback: bool = False) -> Decision:
    return Decision(route, fallback, score, "vote", (), (), lead=lead, ranking=ranking)


def test_band_simulation_counts_what_a_model_could_get_right() -> None:
    """Escalated queries are right (upper bound) when their gold route is offered or they are out
    of scope; at p they count p; the rest keep the vote's outcome."""
    params = DecisionParams(threshold=0.5, default_route="default")
    decisions = [
        decision("a", 0.9, 1.0, ("a",)),  # confident and right: never escalated
        decision("b", 0.52, 1.0, ("b", "a")),  # in the band, wrong; gold "a" offered
        decision("b", 0.52, 1.0, ("b", "c")),  # in the band, wrong; gold "a" not offered
        decision("default", 0.49, 1.0, ("c",), fallback=True),  # in the band, out of scope, right
    ]
    labels = ["a", "a", "a", "oos"]
    sim = BandSimulator(decisions, labels, params, oos_share=0.2)
    band = LLMRoutingParams(band_below=0.02, band_above=0.05, min_lead=0.0, candidates=2)
    s = sim.scores(band, p=0.9)
    assert s.escalated_raw == 0.75
    assert s.in_scope_upper == pytest.approx(2 / 3)  # the confident one, and the one whose gold was offered
    assert s.in_scope_p == pytest.approx((1 + 0.9) / 3)
    assert s.recall_upper == 1.0 and s.recall_p == pytest.approx(0.9)
    assert s.vote_on_escalated == pytest.approx(1 / 3) and s.vote_on_rest == 1.0


def test_band_calibration_respects_the_budget() -> None:
    """No chosen band escalates more than the budget (weighted at the declared out-of-scope share)."""
    params = DecisionParams(threshold=0.5, default_route="default")
    decisions = [decision("a", 0.5 + i / 100, 1.0, ("a", "b")) for i in range(40)]
    labels = ["b" if i < 10 else "a" for i in range(40)]
    result = calibrate_band(decisions, labels, params, LLMRoutingParams(), budget=0.1)
    assert result.chosen is not None and result.chosen.scores.escalated <= 0.1
    assert result.chosen.scores.in_scope_p > result.vote.in_scope_p


def test_among_settings_as_good_the_search_keeps_the_most_off_topic_turns_out() -> None:
    """The one-standard-error rule: a setting within the noise of the best on the turns is as
    good; among those, the one sending more inserted off-topic turns to the default route wins
    over the one nearest the current setting; a setting clearly worse on the turns never does."""
    from types import SimpleNamespace
    from typing import cast

    import numpy as np

    from indexer.conversation_calibration import _Outcomes, _Search

    turns = 40
    right = np.ones((3, turns), bool)
    right[0, :2] = False  # the best: 38 of 40
    right[1, :3] = False  # one turn worse: within one standard error
    right[2, :20] = False  # clearly worse, and the safest
    fallback = np.array([[True, False, False, False], [True, True, True, False], [True, True, True, True]])
    outcomes = SimpleNamespace(first=np.zeros(turns, bool), switch=np.zeros(turns, bool))
    search = _Search(
        settings=(ConversationParams(), ConversationParams(switch=0.1), ConversationParams(switch=0.3)),
        right=right,
        fallback=fallback,
        outcomes=cast(_Outcomes, outcomes),
        off_fold=None,
        alone=np.zeros(turns, bool),
    )
    every, off_every = np.ones(turns, bool), np.ones(4, bool)
    assert search.pick(every, off_every, 0.0, np.array([0, 1, 1])) == 1
    no_off_topic = _Search(search.settings, right, None, cast(_Outcomes, outcomes), None, np.zeros(turns, bool))
    assert no_off_topic.pick(every, None, 0.0, np.array([0, 1, 1])) == 0  # without off-topic turns: the nearest
