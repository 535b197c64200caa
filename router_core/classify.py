"""Classify queries against one opened index version."""

from __future__ import annotations

from collections.abc import Sequence

from router_core.decision import Decision, decide_many
from router_core.embedding import Embedder, Vectors
from router_core.params import DecisionParams
from router_core.store.protocol import OpenIndex


def classify_vectors(index: OpenIndex, vectors: Vectors, params: DecisionParams | None = None) -> list[Decision]:
    """Decide a route for each query vector with the version's own (or given) parameters."""
    chosen = params or index.table.params
    if len(vectors) == 0:
        return []
    neighbours = index.searcher.search(vectors, chosen.k)
    return decide_many(neighbours, chosen)


def classify_texts(
    embedder: Embedder,
    index: OpenIndex,
    texts: Sequence[str],
    params: DecisionParams | None = None,
    *,
    batch_size: int = 64,
) -> list[Decision]:
    """Embed and classify `texts` in one go (evaluation, scripts)."""
    return classify_vectors(index, embedder.encode_queries(texts, batch_size=batch_size), params)
