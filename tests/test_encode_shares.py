"""A small encode (a chat's window never seen before) cut into passes and shared between cores
by token counts (`router_core.embedding.shares`): the least-cost cut, balanced shares, and the
same vectors as each text alone."""

from __future__ import annotations

import itertools
import random
import threading

import numpy as np

from router_core import Embedder
from router_core.embedding import spare_cores
from router_core.embedding.graph import GraphEmbedder
from router_core.embedding.shares import (
    LONE_SPLIT_EXTRA,
    PASS_TOKENS,
    SPLIT_EXTRA,
    SPLIT_GAIN,
    Share,
    passes,
    shares,
    split_extra,
)


def cost(lengths: list[int], share: Share) -> int:
    """Modelled cost of a share: a fixed part per pass plus its rows x its longest row."""
    return sum(PASS_TOKENS + (end - start) * max(lengths[start:end]) for start, end in share)


def every_cut(start: int, end: int) -> list[Share]:
    """Every way to cut texts start..end into contiguous batches."""
    inner = range(start + 1, end)
    out = []
    for k in range(len(inner) + 1):
        for cuts in itertools.combinations(inner, k):
            bounds = [start, *cuts, end]
            out.append(list(itertools.pairwise(bounds)))
    return out


def test_passes_finds_the_cheapest_cut_of_texts_sorted_longest_first() -> None:
    rng = random.Random(7)
    for _ in range(60):
        lengths = sorted((rng.randint(3, 60) for _ in range(rng.randint(1, 9))), reverse=True)
        found = passes(lengths, 0, len(lengths))
        assert [i for a, b in found for i in range(a, b)] == list(range(len(lengths)))
        assert cost(lengths, found) == min(cost(lengths, s) for s in every_cut(0, len(lengths)))


def test_texts_of_similar_length_share_a_pass_and_a_long_one_runs_apart() -> None:
    assert passes([12, 12, 11, 10], 0, 4) == [(0, 4)]
    assert passes([120, 12, 11, 10], 0, 4) == [(0, 1), (1, 4)]


def test_a_chats_window_is_split_into_balanced_contiguous_shares() -> None:
    window = [36, 26, 22, 19, 19, 17, 17, 16, 14, 12, 10]  # an SGD window's token counts
    split = shares(window, 2)
    assert len(split) == 2
    assert [i for share in split for a, b in share for i in range(a, b)] == list(range(len(window)))
    whole = cost(window, passes(window, 0, len(window)))
    largest = max(cost(window, s) for s in split)
    assert largest <= SPLIT_GAIN * whole
    # no other place to split between the two workers does better
    best = min(
        max(cost(window, passes(window, 0, s)), cost(window, passes(window, s, len(window))))
        for s in range(1, len(window))
    )
    assert largest == best
    three = shares(window, 3)
    assert len(three) == 3 and max(cost(window, s) for s in three) < largest


def test_an_encode_is_split_only_when_the_split_adds_little_work() -> None:
    assert shares([12], 2) == [[(0, 1)]]
    assert shares([40, 20], 1) == [passes([40, 20], 0, 2)]  # one worker
    # four short queries: two passes instead of one, 20% more work for the cores
    assert shares([12, 12, 12, 12], 2) == [[(0, 4)]]
    assert cost([12] * 4, [(0, 2), (2, 4)]) > (1 + SPLIT_EXTRA) * cost([12] * 4, [(0, 4)])
    # a live chat's next turn: the agent's reply and the new message run as two passes anyway
    assert passes([37, 22], 0, 2) == [(0, 1), (1, 2)]
    assert shares([37, 22], 2) == [[(0, 1)], [(1, 2)]]


def test_a_lone_callers_short_texts_use_the_second_core_for_some_more_work() -> None:
    """A live chat's next turn of two short texts (SGD: the agent's reply and the new message)
    stays one pass in a busy service (two passes cost 20% more) and is split when its caller
    says nothing else waits (`spare_cores`): up to LONE_SPLIT_EXTRA more work."""
    turn = [16, 13]
    assert cost(turn, [(0, 1)]) + cost(turn, [(1, 2)]) > (1 + SPLIT_EXTRA) * cost(turn, [(0, 2)])
    assert shares(turn, 2) == [[(0, 2)]]
    assert shares(turn, 2, LONE_SPLIT_EXTRA) == [[(0, 1)], [(1, 2)]]
    assert shares([12, 12, 12, 12, 12, 12, 12, 12], 2, LONE_SPLIT_EXTRA) == [[(0, 4)], [(4, 8)]]
    assert shares([12], 2, LONE_SPLIT_EXTRA) == [[(0, 1)]]  # one text is one pass, whatever is spare


def test_spare_cores_holds_for_its_block_on_its_thread_only() -> None:
    seen: list[float] = []
    assert split_extra() == SPLIT_EXTRA
    with spare_cores():
        assert split_extra() == LONE_SPLIT_EXTRA
        other = threading.Thread(target=lambda: seen.append(split_extra()))
        other.start()
        other.join()
        with spare_cores():
            pass
        assert split_extra() == LONE_SPLIT_EXTRA  # a nested block leaves the outer one's hint
    assert seen == [SPLIT_EXTRA]
    try:
        with spare_cores():
            raise RuntimeError("a failed encode")
    except RuntimeError:
        pass
    assert split_extra() == SPLIT_EXTRA


def test_a_chats_window_encodes_as_each_text_alone(bare_embedder: Embedder) -> None:
    """Shared between the caller and a helper thread, every row is its own text's vector."""
    assert isinstance(bare_embedder, GraphEmbedder)
    texts = [
        "I'd like to find a restaurant in San Jose",
        "What kind of food are you in the mood for? I can look for Italian, Mexican, Thai or anything else.",
        "Italian please",
        "I found 10 restaurants. Il Fornaio in San Jose is a nice one, it's moderately priced.",
        "ok",
        "Is there anything else I can help you with today, or would you like me to book a table?",
        "Book a table for 4 at 7 pm",
        "Please confirm: a table for 4 at Il Fornaio in San Jose today at 7 pm.",
        "yes that works",
        "Your table is booked. Is there anything else I can do for you?",
        "also find me a movie to watch after dinner",
    ]
    together = bare_embedder.encode_queries(texts)
    alone = np.vstack([bare_embedder.encode_queries([t]) for t in texts])
    assert float(np.min(np.sum(together * alone, axis=1))) > 0.99999
    if bare_embedder.workers > 1:  # two cores or more: the window was shared with a helper thread
        lengths = sorted((len(bare_embedder._tokenizer.encode(t).ids) for t in texts), reverse=True)
        assert len(shares(lengths, bare_embedder.workers)) > 1
        assert any(t.name.startswith(f"{bare_embedder.backend}-share") for t in threading.enumerate())
