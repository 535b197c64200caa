"""A route set's follow-ups: user messages that continue a conversation instead of asking
something new ("yes, book it", "does it have wifi?", "and for 4 people?").

The conversation rule sends a standalone request that no route claims to the default route
(router_core.conversation, step 2). Which messages are standalone was decided from words and
from the message's similarity to the window alone, and both miss: an off-topic question that
shares a word with the chat is carried along with it, a short follow-up is taken for an
off-topic request. A route set may list follow-ups seen in its own conversations
(`_follow_ups.yaml`, written by `python -m indexer calibrate` from a labelled conversation
file); a message close to one of them (cosine >= `follow_up_similarity`) is never taken for
an off-topic request. Measured on SGD and MultiWOZ (BENCHMARKS.md, "Conversation routing on
two data sets"): against the follow-ups of one half of the dialogues, most of the other half's
follow-ups and few of CLINC150's out-of-scope queries are at cosine 0.5 or more.

They are indexed with the examples (points of the reserved route FOLLOW_UP_ROUTE, which no
route can be called: route names start with a letter or a digit), never searched as
neighbours, and served as one small matrix per index version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from router_core.replies import REPLY_ROUTE

FOLLOW_UPS_FILE = "_follow_ups.yaml"
FOLLOW_UP_ROUTE = "_follow-up"  # the points' route: never a route name (NAME_PATTERN)
MAX_FOLLOW_UPS = 20_000

Vectors = npt.NDArray[np.float32]


RESERVED_ROUTES = frozenset({FOLLOW_UP_ROUTE, REPLY_ROUTE})  # stored points that are no examples


def is_follow_up_route(route: str) -> bool:
    """A stored point that is a follow-up, not an example."""
    return route == FOLLOW_UP_ROUTE


def split_rows(routes: Sequence[str]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The rows of a version's points that are examples, and those that are follow-ups (the
    route set's replies, router_core.replies, are neither: `rows_of`)."""
    reserved = np.fromiter((r in RESERVED_ROUTES for r in routes), bool, len(routes))
    follow_ups = np.fromiter((is_follow_up_route(r) for r in routes), bool, len(routes))
    return np.flatnonzero(~reserved), np.flatnonzero(follow_ups)


def rows_of(routes: Sequence[str], route: str) -> npt.NDArray[np.intp]:
    """The rows of a version's points stored under `route`."""
    return np.flatnonzero(np.fromiter((r == route for r in routes), bool, len(routes)))


def take_rows(vectors: Vectors, rows: npt.NDArray[np.intp]) -> Vectors:
    """`vectors[rows]`, a view (a mapped file stays mapped) when the rows are a leading run."""
    if len(rows) and rows[-1] == len(rows) - 1:
        return vectors[: len(rows)]
    return np.ascontiguousarray(vectors[rows])


def follow_up_bank(vectors: Vectors) -> Vectors:
    """A version's stored follow-up vectors as unit rows (ValueError when not finite)."""
    bank = np.array(vectors, dtype=np.float32)
    if not np.isfinite(bank).all():
        raise ValueError("stored follow-up vectors hold values that are not finite")
    norms = np.linalg.norm(bank, axis=1, keepdims=True)
    unit: Vectors = np.divide(bank, norms, out=np.zeros_like(bank), where=norms > 0)
    return unit


def best_similarity(queries: Vectors, bank: Vectors | None) -> npt.NDArray[np.float64]:
    """Each query's best cosine to the follow-ups in `bank` (unit vectors); -inf without any."""
    if bank is None or len(bank) == 0 or len(queries) == 0:
        return np.full(len(queries), -np.inf)
    return np.asarray((queries @ bank.T).max(axis=1), np.float64)


def best_by_text(
    texts: Sequence[str], vectors: Mapping[str, npt.NDArray[np.float32]], bank: Vectors | None
) -> dict[str, float]:
    """Each of `texts`' best cosine to the follow-ups in `bank`, by text (empty without any)."""
    texts = list(dict.fromkeys(texts))
    if bank is None or not len(bank) or not texts:
        return {}
    best = best_similarity(np.stack([vectors[t] for t in texts]), bank)
    return {t: float(b) for t, b in zip(texts, best, strict=True)}
