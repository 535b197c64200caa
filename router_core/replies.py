"""A route set's replies: agent messages seen in its conversations, each with how often the
user's next message opened a new topic.

The conversation rule's filter (router_core.conversation, step 3) lets the topic change at a
user message with a fixed chance (`switch`). A fixed chance is wrong both ways: after "Your
table is booked. Is there anything else I can help with?" a new topic is likely, after "How
many people will be dining?" it is not. A route set may list the agent messages seen in its
own conversations (`_replies.yaml`, written by `python -m indexer calibrate` from a labelled
conversation file), each with how many times the next labelled user turn was the first of its
domain (`new_topic`) and how many times it was not (`same_topic`). Then at a user message that
follows an agent message in the window, the chance of a change of topic is at least the share
of new topics after the REPLY_NEIGHBOURS replies nearest that agent message, among those at
cosine REPLY_SIMILARITY or more (weighted by their counts): the switch chance learnt from the
route set's own conversations. No parameter: the counts are the estimate. Measured on SGD and
MultiWOZ (BENCHMARKS.md, "Conversation routing on two data sets").

Like follow-ups, they are indexed with the examples (points of the reserved route REPLY_ROUTE),
never searched as neighbours, and served as one small matrix per index version; the counts are
recorded in the version's route table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from router_core import constants

REPLIES_FILE = "_replies.yaml"
REPLY_ROUTE = "_reply"  # the points' route: never a route name (NAME_PATTERN)
MAX_REPLIES = 20_000
MAX_REPLY_COUNT = 1_000_000  # per reply and kind: more says nothing a smaller count does not

Vectors = npt.NDArray[np.float32]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Reply:
    """One agent message and what the user did next: opened a new topic, or stayed."""

    text: str
    new_topic: int
    same_topic: int


@dataclass(frozen=True)
class ReplyBank:
    """A version's replies as unit rows with their counts (row i is replies[i])."""

    vectors: Vectors
    new_topic: FloatArray
    total: FloatArray

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


def reply_bank(vectors: Vectors, replies: Sequence[Reply]) -> ReplyBank:
    """The stored reply vectors (rows in `replies`' order) as a bank (ValueError when a vector is
    not finite or the rows and the replies differ in number)."""
    bank = (
        np.array(vectors, dtype=np.float32).reshape(len(vectors), -1) if len(vectors) else np.zeros((0, 0), np.float32)
    )
    if bank.shape[0] != len(replies):
        raise ValueError(f"{bank.shape[0]} stored reply vectors for {len(replies)} replies")
    if not np.isfinite(bank).all():
        raise ValueError("stored reply vectors hold values that are not finite")
    norms = np.linalg.norm(bank, axis=1, keepdims=True)
    unit: Vectors = np.divide(bank, norms, out=np.zeros_like(bank), where=norms > 0)
    new = np.array([r.new_topic for r in replies], np.float64)
    total = new + np.array([r.same_topic for r in replies], np.float64)
    return ReplyBank(unit, new, total)


def new_topic_chance(queries: Vectors, bank: ReplyBank | None, k: int | None = None) -> FloatArray:
    """Per agent message (unit rows): the share of new topics after the `k` replies of `bank`
    nearest it (REPLY_NEIGHBOURS by default), each weighing its count; only replies at cosine
    REPLY_SIMILARITY or more take part (an agent message unlike every known reply has no
    estimate: its chance is not extrapolated from unlike ones), and a reply counting nothing is
    left out. NaN: no estimate."""
    k = constants.REPLY_NEIGHBOURS if k is None else k
    counted = bank.total > 0 if bank is not None else np.zeros(0, bool)
    take = min(k, int(counted.sum()))
    if bank is None or take == 0 or not len(queries):
        return np.full(len(queries), np.nan)
    sims = queries @ bank.vectors.T
    sims[:, ~counted] = -np.inf
    nearest = np.argpartition(-sims, take - 1, axis=1)[:, :take]
    near = np.take_along_axis(sims, nearest, axis=1) >= constants.REPLY_SIMILARITY
    new = (bank.new_topic[nearest] * near).sum(axis=1)
    total = (bank.total[nearest] * near).sum(axis=1)
    out: FloatArray = np.divide(new, total, out=np.full(len(queries), np.nan), where=total > 0)
    return out


def chance_by_text(
    texts: Sequence[str], vectors: Mapping[str, npt.NDArray[np.float32]], bank: ReplyBank | None
) -> dict[str, float]:
    """`new_topic_chance` of each of `texts`, by text (empty without a bank)."""
    texts = list(dict.fromkeys(texts))
    if bank is None or not len(bank) or not texts:
        return {}
    chance = new_topic_chance(np.stack([vectors[t] for t in texts]), bank)
    return {t: float(c) for t, c in zip(texts, chance, strict=True) if np.isfinite(c)}
