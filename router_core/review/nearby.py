"""The logged queries nearest to a reviewed one, and where each would go if the reviewed query
were added as an example of the route its feedback names: the change's effect on real
traffic, beside its effect on the evaluation files (`router_core.review.guard`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from router_core.decision import decide_many
from router_core.embedding import Embedder, Vectors
from router_core.neighbours import Neighbour
from router_core.store import OpenIndex

MIN_SIMILARITY = 0.5
PER_ANCHOR = 3


@dataclass(frozen=True)
class Nearby:
    """A logged query near a reviewed one: the route it goes to now and would go to."""

    position: int  # in the logged texts given
    anchor: int  # in the anchors given
    similarity: float
    now: str
    if_added: str


def nearby(
    index: OpenIndex,
    embedder: Embedder,
    anchors: Sequence[tuple[str, str]],
    logged: Sequence[str],
    *,
    min_similarity: float = MIN_SIMILARITY,
    per_anchor: int = PER_ANCHOR,
    vectors: Vectors | None = None,
) -> list[Nearby]:
    """For each anchor (text, route it should go to), the logged texts most similar to it (at
    least `min_similarity`, at most `per_anchor`), each with its decision now and with the
    anchor added as an example of that route. `vectors`: the logged texts' vectors, if known."""
    if not anchors or not logged:
        return []
    params = index.table.params
    anchor_vectors = embedder.encode_queries([a for a, _ in anchors])
    logged_vectors = vectors if vectors is not None else embedder.encode_queries(list(logged))
    sims = np.asarray(logged_vectors, dtype=np.float32) @ np.asarray(anchor_vectors, dtype=np.float32).T
    picked: list[tuple[int, int, float]] = []
    for j, (anchor_text, _) in enumerate(anchors):
        order = np.argsort(-sims[:, j], kind="stable")
        chosen = [i for i in order.tolist() if sims[i, j] >= min_similarity and logged[i] != anchor_text]
        picked += [(i, j, float(sims[i, j])) for i in chosen[:per_anchor]]
    if not picked:
        return []
    rows = index.searcher.search(np.stack([logged_vectors[i] for i, _, _ in picked]), params.k)
    now = decide_many(rows, params)
    after = decide_many(
        [[*row, Neighbour(anchors[j][0], anchors[j][1], sim)] for row, (_, j, sim) in zip(rows, picked, strict=True)],
        params,
    )
    return [Nearby(i, j, round(sim, 4), n.route, a.route) for (i, j, sim), n, a in zip(picked, now, after, strict=True)]
