"""A conversation's routing work is bounded by its window, not its history: each message of the
window is embedded once, and each user message's context is a mix of those vectors (searched,
never embedded)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from devkit.serving import SHIPPED_ROUTES
from router_core import RouteRequest, RouteTable, Turn, load_routes
from router_core.constants import ASSISTANT_TAIL_CHARS, CONTEXT_MESSAGES, CONTEXT_WEIGHT_CHARS
from router_core.mixing import Mix, mix_vectors
from router_core.params import ConversationParams
from router_core.pipeline import plan, search_vectors


def chat(messages: int, chars: int = 40) -> RouteRequest:
    """Alternating user and assistant messages of about `chars` characters, the user's last."""
    turns = []
    for i in range(messages):
        text = f"message {i:05d} " + "x" * max(0, chars - 14)
        turns.append(Turn(i, "user" if i % 2 == 0 else "assistant", text))
    return RouteRequest(tuple(turns))


@pytest.fixture(scope="module")
def table() -> RouteTable:
    return load_routes(SHIPPED_ROUTES)


def test_the_plan_embeds_each_window_message_once_and_mixes_the_contexts(table: RouteTable) -> None:
    """A 41-message chat plans the window's messages as they are (no text built from several),
    and one context per user message of the window, mixed from those texts' vectors."""
    window = table.conversation.window
    request = chat(41)
    planned = plan([request], table)
    messages = {t.text for t in request.turns}
    assert len(planned.texts) == 2 * window - 1  # window user messages and the replies between them
    assert set(planned.texts) <= messages
    assert planned.texts[0] == request.text
    assert len(planned.mixes) == window
    for mix in planned.mixes:
        assert set(mix.texts) <= set(planned.texts) and len(mix.texts) <= CONTEXT_MESSAGES + 1
        assert mix.weights == tuple(float(min(len(t), CONTEXT_WEIGHT_CHARS)) for t in mix.texts)


def test_the_work_does_not_grow_with_the_history(table: RouteTable) -> None:
    """20 or 400 messages of history: the same number of texts to embed, of the same size, and
    the same number of contexts to search."""
    short, long = plan([chat(21)], table), plan([chat(401)], table)
    assert (len(short.texts), len(short.mixes)) == (len(long.texts), len(long.mixes))
    assert sum(map(len, short.texts)) == sum(map(len, long.texts))


def test_without_a_context_weight_nothing_is_mixed(table: RouteTable) -> None:
    """context_weight 0 reads no contexts: the plan holds the window's texts only."""
    planned = plan([chat(9)], replace(table, conversation=ConversationParams(context_weight=0.0)))
    assert planned.mixes == () and len(planned.texts) == 9


def test_a_context_is_the_weighted_mean_of_its_messages_vectors_renormalised() -> None:
    """mix_vectors: sum of weight x vector, scaled to unit length; the search rows are the
    texts' vectors in plan order, then the mixes'."""
    vectors = {"a": np.array([1, 0, 0], np.float32), "b": np.array([0, 1, 0], np.float32)}
    row = mix_vectors([Mix(("a", "b"), (3.0, 1.0))], vectors, 3)[0]
    expected = np.array([3, 1, 0]) / np.sqrt(10)
    assert np.allclose(row, expected) and row.dtype == np.float32
    with pytest.raises(ValueError, match="one weight per text"):
        Mix(("a",), (1.0, 2.0))


def test_search_rows_follow_the_plans_queries(table: RouteTable) -> None:
    """search_vectors gives one row per query, texts first, each text's row its own vector."""
    planned = plan([chat(5)], table)
    rng = np.random.default_rng(0)
    vectors = {t: (v / np.linalg.norm(v)).astype(np.float32) for t in planned.texts for v in [rng.normal(size=8)]}
    rows = search_vectors(planned, vectors, 8)
    assert rows.shape == (len(planned.queries), 8)
    for i, text in enumerate(planned.texts):
        assert np.array_equal(rows[i], vectors[text])
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)


def test_an_agents_long_answers_cost_no_more_than_short_ones(table: RouteTable) -> None:
    """Assistant messages of 20,000 characters: the rule reads each one's end (at most
    ASSISTANT_TAIL_CHARS, from a word start, the words nearest the user's reply), so the texts
    to embed stay as small as for short answers; user messages are read whole."""
    words = " ".join(f"word{i}" for i in range(3000))
    turns = [Turn(i, "user" if i % 2 == 0 else "assistant", f"{words} answer {i}"[-20_000:]) for i in range(9)]
    planned = plan([RouteRequest(tuple(turns))], table)
    answers = [t for t in planned.texts if t not in {u.text for u in turns if u.role == "user"}]
    assert len(answers) == 4
    for text in answers:
        assert len(text) <= ASSISTANT_TAIL_CHARS and text.startswith("word")
        assert any(t.role == "assistant" and t.text.endswith(text) for t in turns)
    assert all(len(t) == 20_000 for t in planned.texts if t not in answers)
