"""Conversation routing: the history decides follow-ups, confident switches and off-topic
requests are routed on their own (real model, shipped routes, over HTTP)."""

from __future__ import annotations

import re
from dataclasses import replace

import httpx
import numpy as np
import pytest

from router_core import CannedAgent, DecisionParams, Neighbour, RouteRequest, pipeline
from router_core.conversation import (
    Turn,
    content_words,
    route_conversation,
    texts_needed,
    without_default_exchanges,
)
from router_core.params import ConversationParams
from router_core.pipeline import Found
from router_core.routes import Route, RouteTable

MATHS = [{"role": "user", "content": "What is 15% of 200?"}, {"role": "assistant", "content": "15% of 200 is 30."}]


def chat(*turns: str) -> list[dict[str, str]]:
    """Alternating user/assistant messages, starting with the user."""
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]


def classify(client: httpx.Client, messages: list[dict[str, str]]) -> dict[str, object]:
    resp = client.post("/v1/classify", json={"messages": messages})
    assert resp.status_code == 200, resp.text
    body: dict[str, object] = resp.json()
    return body


def test_follow_up_without_domain_words_continues_the_route(client: httpx.Client) -> None:
    """'and of 350?' after a percentage question goes to maths, and the response names the turns that decided."""
    body = classify(client, [*MATHS, {"role": "user", "content": "and of 350?"}])
    assert body["route"] == "maths"
    assert body["reason"] in ("continued", "context")
    turns = body["turns"]
    assert isinstance(turns, list) and turns
    assert {t["index"] for t in turns} <= {0, 1, 2}
    assert 0 in {t["index"] for t in turns}  # the earlier maths question carries the route


def test_a_clear_switch_goes_to_the_new_route(client: httpx.Client) -> None:
    """A coding question in the middle of a maths chat goes to coding."""
    body = classify(client, [*MATHS, {"role": "user", "content": "How do I reverse a string in Rust?"}])
    assert body["route"] == "coding"
    assert body["reason"] in ("vote", "standalone")


def test_off_topic_request_mid_chat_falls_back(client: httpx.Client) -> None:
    """A banana-bread question in the middle of a maths chat goes to the default agent, not to maths."""
    body = classify(client, [*MATHS, {"role": "user", "content": "What is a good banana bread recipe?"}])
    assert body["route"] == "default" and body["fallback"] is True
    assert body["reason"] == "off_topic"


def test_one_message_conversation_is_the_single_query_decision(client: httpx.Client) -> None:
    """messages with one user message (and a system prompt) decide exactly as query does."""
    for query in ("How do I use async with Rust?", "What is 15% of 200?", "tell me a joke"):
        single = client.post("/v1/classify", json={"query": query}).json()
        as_chat = classify(client, [{"role": "system", "content": "be brief"}, {"role": "user", "content": query}])
        assert {k: v for k, v in as_chat.items() if k != "turns"} == single


def test_batch_of_conversations_matches_one_by_one(client: httpx.Client) -> None:
    """/v1/classify/batch with conversations gives each the decision it gets alone."""
    chats = [
        [*MATHS, {"role": "user", "content": "and of 350?"}],
        [*MATHS, {"role": "user", "content": "How do I reverse a string in Rust?"}],
        chat("How do I use async with Rust?"),
    ]
    batch = client.post("/v1/classify/batch", json={"conversations": [{"messages": c} for c in chats]}).json()
    alone = [classify(client, c) for c in chats]
    assert [r["route"] for r in batch["results"]] == [r["route"] for r in alone] == ["maths", "coding", "coding"]


def test_chat_completion_routes_the_follow_up_to_the_conversation_route(client: httpx.Client) -> None:
    """/v1/chat/completions routes on the conversation: a 'yes please' after a maths exchange stays on maths."""
    messages = [*MATHS, {"role": "user", "content": "yes please, show the working"}]
    resp = client.post("/v1/chat/completions", json={"model": "router", "messages": messages})
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-router-route"] == "maths"
    assert resp.json()["router"]["turns"]


# -- the rule itself, on hand-made neighbours ----------------------------------------------------
P = DecisionParams(k=3, threshold=0.5, default_route="default")


def hits(route: str, sim: float) -> list[Neighbour]:
    return [Neighbour(f"{route}-{i}", route, sim - i * 0.01) for i in range(3)]


def searched(client: httpx.Client) -> dict[str, float]:
    """router_searched_texts_total by source, from /metrics."""
    found = re.findall(
        r'router_searched_texts_total\{route_set="default",source="(\w+)"\} ([0-9.]+)', client.get("/metrics").text
    )
    return {source: float(value) for source, value in found}


def test_a_chat_searches_only_its_new_texts(client: httpx.Client) -> None:
    """A live chat sends its history on every turn: the next turn finds the history's nearest
    examples in the cache and searches only the texts it has not seen, with the same decision."""
    history = [
        {"role": "user", "content": "What is 17% of 230? (neighbour cache)"},
        {"role": "assistant", "content": "17% of 230 is 39.1."},
    ]
    first = client.post("/v1/classify", json={"messages": [*history, {"role": "user", "content": "and of 512?"}]})
    assert first.status_code == 200 and first.json()["route"] == "maths"
    before = searched(client)
    turn = [*history, {"role": "user", "content": "and of 512?"}, {"role": "assistant", "content": "87.04."}]
    second = client.post("/v1/classify", json={"messages": [*turn, {"role": "user", "content": "and of 9,000?"}]})
    assert second.status_code == 200 and second.json()["route"] == "maths"
    after = searched(client)
    assert after["cache"] - before.get("cache", 0) >= 3  # the earlier messages
    assert after["searched"] - before["searched"] <= 3  # only what the new turn added
    again = client.post("/v1/classify", json={"messages": [*turn, {"role": "user", "content": "and of 9,000?"}]})
    assert again.json()["route"] == second.json()["route"] and again.json()["score"] == second.json()["score"]


def test_history_is_read_only_inside_the_window() -> None:
    """Only the last `window` user messages (and messages between them) are needed."""
    turns = [Turn(i, "user" if i % 2 == 0 else "assistant", f"m{i}") for i in range(21)]
    needed = texts_needed(turns, ConversationParams(window=2))
    assert "m0" not in needed and "m20" in needed and "m18" in needed
    assert len([t for t in needed if t.startswith("m") and " " not in t]) <= 4


def test_a_new_topic_with_evidence_of_its_own_outweighs_any_history() -> None:
    """However long the history of route a, a last message with enough evidence for route b
    switches: the switch chance caps how sure the filter is of a (reason vote: only the last
    message supports b)."""
    turns = []
    for i in range(6):
        turns += [Turn(2 * i, "user", f"a q{i}"), Turn(2 * i + 1, "assistant", f"a answer{i}")]
    turns.append(Turn(12, "user", "b q"))
    neighbours = {t.text: hits("a", 0.9) for t in turns[:-1]} | {"b q": hits("b", 0.85)}
    v = np.ones(4, dtype=np.float32) / 2  # every message alike: only the evidence tells the topics apart
    d = route_conversation(turns, neighbours, dict.fromkeys(neighbours, v), P, ConversationParams(context_weight=0.0))
    assert (d.route, d.reason, [t.index for t in d.turns]) == ("b", "vote", [12])


def test_content_free_follow_up_is_carried() -> None:
    """'yes' with no evidence of its own takes the route of the earlier turns (reason continued)."""
    turns = [Turn(0, "user", "a q"), Turn(1, "assistant", "a answer"), Turn(2, "user", "yes")]
    conv = ConversationParams(context_weight=0.0)
    neighbours = {"a q": hits("a", 0.9), "a answer": hits("a", 0.7), "yes": hits("b", 0.2)}
    v = np.ones(4, dtype=np.float32) / 2
    vectors = {"a q": v, "a answer": v, "yes": v}
    d = route_conversation(turns, neighbours, vectors, P, conv)
    assert (d.route, d.fallback, d.reason) == ("a", False, "continued")
    assert d.turns[0].index == 0


@pytest.mark.parametrize(
    ("route_thresholds", "route", "reason"),
    [
        ({}, "b", "vote"),  # at the global threshold 0.5, b's similarities 0.62 are evidence enough to switch
        ({"b": 0.8}, "a", "continued"),  # b's own threshold puts its evidence floor above them: a is carried
        ({"a": 1.0, "b": 0.8}, "default", "below_threshold"),  # no route has evidence over its own floor
    ],
)
def test_per_route_thresholds_set_each_routes_evidence_floor(
    route_thresholds: dict[str, float], route: str, reason: str
) -> None:
    """A route file's threshold is honoured by the conversation rule as by the vote: a route's
    evidence counts only similarity above its own threshold minus floor_below."""
    turns = [Turn(0, "user", "a q"), Turn(1, "assistant", "a answer"), Turn(2, "user", "b q")]
    neighbours = {"a q": hits("a", 0.9), "a answer": hits("a", 0.9), "b q": hits("b", 0.62)}
    v = np.ones(4, dtype=np.float32) / 2
    params = replace(P, route_thresholds=route_thresholds)
    d = route_conversation(
        turns, neighbours, dict.fromkeys(neighbours, v), params, ConversationParams(context_weight=0)
    )
    assert (d.route, d.reason) == (route, reason)


@pytest.mark.parametrize(
    ("unrelated_switch", "related", "route", "reason"),
    [
        (0.0, False, "a", "continued"),  # the switch chance alone keeps the carried route
        (0.6, False, "b", "vote"),  # unrelated to the window: the larger chance lets its evidence move it
        (0.6, True, "a", "continued"),  # related to the window: switch applies, as without the knob
    ],
)
def test_an_unrelated_last_message_switches_with_unrelated_switch(
    unrelated_switch: float, related: bool, route: str, reason: str
) -> None:
    """A new request right after a settled exchange (MultiWOZ's "I am also looking for an
    attraction" after a train booking): with `unrelated_switch`, a last message unrelated to the
    window (cosine under standalone_similarity to every earlier message) may change the topic
    with that chance instead of `switch`; a related one keeps `switch`."""
    a_q, a_answer, new = "a question", "a answer", "b please"
    neighbours = {a_q: hits("a", 0.9), a_answer: hits("a", 0.9), new: hits("b", 0.56)}
    chat, other = np.array([1, 0, 0, 0], np.float32), np.array([0, 1, 0, 0], np.float32)
    vectors = {a_q: chat, a_answer: chat, new: chat if related else other}
    conv = ConversationParams(context_weight=0.0, switch=0.03, unrelated_switch=unrelated_switch)
    turns = [Turn(0, "user", a_q), Turn(1, "assistant", a_answer), Turn(2, "user", new)]
    d = route_conversation(turns, neighbours, vectors, P, conv)
    assert (d.route, d.reason) == (route, reason)


def test_an_unrelated_request_no_route_takes_goes_to_the_default_route() -> None:
    """A request of its own, unrelated to the conversation and under every threshold, is not
    carried: the default route (reason off_topic); the next in-domain follow-up returns to a."""
    a_q, a_answer, off, sorry = "a question", "a answer", "what is a good banana bread recipe", "Sorry, I can't."
    neighbours = {a_q: hits("a", 0.9), a_answer: hits("a", 0.8), off: hits("a", 0.2), sorry: hits("b", 0.1)}
    neighbours["and again?"] = hits("b", 0.2)
    chat, topic = np.array([1, 0, 0, 0], np.float32), np.array([0, 1, 0, 0], np.float32)
    vectors = {a_q: chat, a_answer: chat, off: topic, sorry: topic, "and again?": chat}
    conv = ConversationParams(context_weight=0.0)
    turns = [Turn(0, "user", a_q), Turn(1, "assistant", a_answer), Turn(2, "user", off)]
    d = route_conversation(turns, neighbours, vectors, P, conv)
    assert (d.route, d.fallback, d.reason) == ("default", True, "off_topic")
    after = [*turns, Turn(3, "assistant", sorry), Turn(4, "user", "and again?")]
    assert route_conversation(after, neighbours, vectors, P, conv).route == "a"


@pytest.mark.parametrize(
    ("chance", "route", "reason"),
    [
        (None, "a", "continued"),  # no replies known: the fixed switch chance keeps the carried route
        (0.02, "a", "continued"),  # a reply after which the topic stays: never less than `switch`
        (0.6, "b", "vote"),  # a reply after which a new topic is likely: the new message's evidence moves it
    ],
)
def test_the_reply_before_a_message_sets_its_chance_of_a_new_topic(
    chance: float | None, route: str, reason: str
) -> None:
    """With the route set's replies (router_core.replies), a user message right after an agent
    message may change the topic with at least that reply's chance of a new topic."""
    a_q, a_answer, new = "a question", "a answer, anything else?", "b please"
    neighbours = {a_q: hits("a", 0.9), a_answer: hits("a", 0.9), new: hits("b", 0.56)}
    v = np.array([1, 0, 0, 0], np.float32)
    conv = ConversationParams(context_weight=0.0, switch=0.03)
    turns = [Turn(0, "user", a_q), Turn(1, "assistant", a_answer), Turn(2, "user", new)]
    known = None if chance is None else {a_answer: chance, a_q: 0.99, new: 0.99}  # only the agent's counts
    d = route_conversation(turns, neighbours, dict.fromkeys(neighbours, v), P, conv, reply_chance=known)
    assert (d.route, d.reason) == (route, reason)


@pytest.mark.parametrize(
    ("earlier", "route", "reason"),
    [
        ("a", "default", "off_topic"),  # the chat was about a: only the request itself leads to b
        ("b", "b", "standalone"),  # the chat was about b already: it leads to the request's own route
    ],
)
def test_an_unsure_request_is_kept_only_when_the_conversation_led_to_its_route(
    earlier: str, route: str, reason: str
) -> None:
    """Step 2: a standalone request its own vote routes without confidence (0.52: over b's
    threshold, under it + standalone_margin; one of its 3 nearest examples over the threshold)
    goes to the default route, even when a likely change of topic (the reply before it) lets
    the filter follow its own evidence; it keeps its route when the conversation was on that
    route before it."""
    q, answer, unsure = "earlier question", "earlier answer", "recommend a vegetarian lasagne recipe"
    weak = [Neighbour("b-0", "b", 0.52), Neighbour("c-0", "c", 0.45), Neighbour("c-1", "c", 0.44)]
    neighbours = {q: hits(earlier, 0.9), answer: hits(earlier, 0.9), unsure: weak}
    chat, other = np.array([1, 0, 0, 0], np.float32), np.array([0, 1, 0, 0], np.float32)
    vectors = {q: chat, answer: chat, unsure: other}
    conv = ConversationParams(context_weight=0.0, standalone_margin=0.05, standalone_similarity=0.25)
    turns = [Turn(0, "user", q), Turn(1, "assistant", answer), Turn(2, "user", unsure)]
    d = route_conversation(turns, neighbours, vectors, P, conv, reply_chance={answer: 0.9})
    assert (d.route, d.reason) == (route, reason)


@pytest.mark.parametrize(
    ("own", "route", "reason"),
    [
        ((0.52, 0.51, 0.3), "b", "standalone"),  # two of its three nearest examples vote b: its own route
        ((0.52, 0.3, 0.29), "default", "off_topic"),  # one of three, under the confident bar: off-topic
    ],
)
def test_a_standalone_request_most_of_whose_neighbours_vote_its_route_keeps_it(
    own: tuple[float, float, float], route: str, reason: str
) -> None:
    """Step 2: a request unrelated to the chat ("I am also looking for a place to dine called
    saigon city" after a train booking) that its own vote routes without confidence (0.52:
    under b's threshold + standalone_margin) goes to its own vote's route when most of its k
    nearest examples name that route over the threshold, not to the default route and not to
    the carried topic; with fewer, it is off-topic."""
    q, answer, new = "earlier question", "earlier answer", "i also need a place to dine called saigon city"
    mine = [Neighbour("b-0", "b", own[0]), Neighbour("b-1", "b", own[1]), Neighbour("b-2", "b", own[2])]
    neighbours = {q: hits("a", 0.9), answer: hits("a", 0.9), new: mine}
    chat, other = np.array([1, 0, 0, 0], np.float32), np.array([0, 1, 0, 0], np.float32)
    vectors = {q: chat, answer: chat, new: other}
    conv = ConversationParams(context_weight=0.0, switch=0.01, standalone_margin=0.1, standalone_similarity=0.25)
    turns = [Turn(0, "user", q), Turn(1, "assistant", answer), Turn(2, "user", new)]
    d = route_conversation(turns, neighbours, vectors, P, conv)
    assert (d.route, d.reason) == (route, reason)


@pytest.mark.parametrize(
    ("follow_up", "route", "reason"),
    [
        (None, "default", "off_topic"),  # the route set has no follow-ups: step 2 as before
        (0.3, "default", "off_topic"),  # far from every known follow-up: still a request of its own
        (0.7, "a", "continued"),  # close to a known follow-up: carried, whatever its words
    ],
)
def test_a_request_close_to_a_known_follow_up_is_never_taken_for_off_topic(
    follow_up: float | None, route: str, reason: str
) -> None:
    """Step 2 takes a standalone request no route claims for off-topic, unless it is as close as
    `follow_up_similarity` to one of the route set's follow-ups (router_core.follow_ups)."""
    a_q, a_answer, last = "a question", "a answer", "does the second one have parking nearby"
    neighbours = {a_q: hits("a", 0.9), a_answer: hits("a", 0.8), last: hits("a", 0.2)}
    chat, topic = np.array([1, 0, 0, 0], np.float32), np.array([0, 1, 0, 0], np.float32)
    vectors = {a_q: chat, a_answer: chat, last: topic}
    conv = ConversationParams(context_weight=0.0, follow_up_similarity=0.5)
    turns = [Turn(0, "user", a_q), Turn(1, "assistant", a_answer), Turn(2, "user", last)]
    known = None if follow_up is None else {last: follow_up}
    d = route_conversation(turns, neighbours, vectors, P, conv, follow_up=known)
    assert (d.route, d.reason) == (route, reason)


@pytest.mark.parametrize(
    ("text", "words"),
    [("yes please", 0), ("for 4 people tomorrow", 0), ("What is a good banana bread recipe?", 3)],
)
def test_content_words_ignore_dialogue_words(text: str, words: int) -> None:
    """Politeness, dates, counts and function words do not make a message a request of its own."""
    assert content_words(text) == words


def test_an_index_version_recording_retired_parameters_still_opens() -> None:
    """A version indexed before decay and gate_above were retired opens (they are ignored), so
    an upgrade never makes the live index unreadable; its other conversation values are kept."""
    table = RouteTable.from_dict(
        {
            "name": "router",
            "default_agent": {"kind": "canned", "name": "d", "reply": "no"},
            "routes": [],
            "conversation": {"window": 5, "decay": 0.5, "gate_above": 0.3, "floor_below": 0.15},
        },
        {},
    )
    assert (table.conversation.window, table.conversation.floor_below) == (5, 0.15)


DEFAULT_REPLY = "Sorry, I can't help with that request."


def test_an_exchange_the_default_agent_answered_is_not_read() -> None:
    """The route set's canned default reply and the user message it answered are left out of
    what the rule reads (whitespace aside); another reply, or one after the routed message, is
    read as it is."""
    turns = [
        Turn(0, "user", "a question"),
        Turn(1, "assistant", "a answer"),
        Turn(2, "user", "banana bread?"),
        Turn(3, "assistant", " Sorry,  I can't help with\nthat request. "),
        Turn(4, "user", "yes please"),
    ]
    kept = without_default_exchanges(turns, DEFAULT_REPLY)
    assert [t.index for t in kept] == [0, 1, 4]
    assert without_default_exchanges(turns, "Another reply.") == tuple(turns)
    assert without_default_exchanges(turns, None) == tuple(turns)
    answered_last = [*turns, Turn(5, "assistant", DEFAULT_REPLY)]  # after the routed message: kept
    assert [t.index for t in without_default_exchanges(answered_last, DEFAULT_REPLY)] == [0, 1, 4, 5]


@pytest.mark.parametrize(("reply", "route"), [(DEFAULT_REPLY, "a"), ("Here is a banana bread recipe.", "b")])
def test_the_turn_after_an_off_topic_exchange_returns_to_the_conversation(reply: str, route: str) -> None:
    """Through the pipeline: an off-topic request the default agent answered (its canned reply)
    does not carry its own evidence into the next follow-up, which returns to the chat's route;
    answered by another text, the exchange is read like any other."""
    a_q, a_answer, off, follow = "a question", "a answer", "banana bread?", "yes please"
    neighbours = {a_q: hits("a", 0.9), a_answer: hits("a", 0.8), off: hits("b", 0.95), follow: hits("c", 0.2)}
    neighbours[reply] = hits("c", 0.1)
    vectors = dict.fromkeys(neighbours, np.ones(4, np.float32) / 2)
    agent = CannedAgent(name="default-agent", reply=DEFAULT_REPLY)
    routes = tuple(Route(n, n, (f"{n}-0",), agent) for n in ("a", "b", "c"))
    conv = ConversationParams(context_weight=0.0, switch=0.3)
    table = RouteTable(name="t", routes=routes, default_agent=agent, params=P, conversation=conv)
    messages = [(a_q, "user"), (a_answer, "assistant"), (off, "user"), (reply, "assistant"), (follow, "user")]
    request = RouteRequest(tuple(Turn(i, role, text) for i, (text, role) in enumerate(messages)))
    planned = pipeline.plan([request], table)
    assert (off in planned.texts) == (reply != DEFAULT_REPLY)  # the skipped exchange is not even embedded
    [decision] = pipeline.decide([request], planned, Found(neighbours, vectors), table)
    assert decision.route == route
