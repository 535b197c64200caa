"""The off-topic bar of conversation calibration (indexer.conversation_calibration): the share
of off-topic queries that fall back alone plus one standard error, and what is chosen when no
setting reaches it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest

from indexer.conversation_calibration import _Search, off_topic_bar
from router_core.params import ConversationParams


def test_the_bar_is_the_share_alone_plus_one_standard_error_capped_by_what_a_setting_reaches() -> None:
    """200 queries, 91% alone: +2.0 points; no higher than the best setting; never under alone."""
    assert off_topic_bar(0.91, 200, 0.99) == pytest.approx(0.91 + np.sqrt(0.91 * 0.09 / 200))
    assert off_topic_bar(0.985, 200, 0.99) == pytest.approx(0.99)  # the best setting reaches 99%, not 99.4%
    assert off_topic_bar(0.90, 200, 0.85) == pytest.approx(0.90)  # none reaches it: the bar stays at alone
    assert off_topic_bar(1.0, 50, 1.0) == pytest.approx(1.0)


def _search(right: list[list[bool]], fallback: list[list[bool]]) -> _Search:
    """Three settings scored on four turns (no first-of-domain turns, no switches) and on
    inserted off-topic turns."""
    turns = len(right[0])
    outcomes = SimpleNamespace(first=np.zeros(turns, bool), switch=np.zeros(turns, bool))
    return _Search(
        settings=tuple(ConversationParams(switch=s) for s in (0.01, 0.03, 0.1)),
        right=np.array(right, bool),
        fallback=np.array(fallback, bool),
        outcomes=cast(Any, outcomes),
        off_fold=np.zeros(len(fallback[0]), np.int64),
        alone=np.zeros(turns, bool),
    )


def test_when_no_setting_reaches_the_bar_the_safest_one_is_chosen() -> None:
    """No setting sends 90% of the off-topic turns to the default route: the choice is among those
    sending the most (here the third, though the first is the most accurate), not the most
    accurate one regardless; with a bar they reach, the most accurate above it wins."""
    search = _search(
        right=[[True, True, True, True], [True, True, True, False], [True, False, False, False]],
        fallback=[[True, False, False, False], [True, True, False, False], [True, True, True, False]],
    )
    turns, off = np.ones(4, bool), np.ones(4, bool)
    distance = np.zeros(3, np.int64)
    assert search.pick(turns, off, 0.9, distance) == 2
    assert search.ranked(turns, off, 0.9)[1] == 0  # none feasible
    assert search.pick(turns, off, 0.5, distance) == 1  # the second reaches 50% and is more accurate than the third
