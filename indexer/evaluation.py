"""Score routing decisions against labelled queries: the scoring is pure and lives in
`router_core.evaluation` (the service's POST /v1/evaluate scores with the same code); embedding
and searching the queries, with progress, is here."""

from __future__ import annotations

from collections.abc import Sequence

from indexer.progress import Steps
from router_core import Neighbour, OpenIndex
from router_core.embedding import Embedder
from router_core.evaluation import (
    EXAMPLES_PER_CONFUSION,
    Confusion,
    CurvePoint,
    EvalReport,
    RouteScore,
    evaluate,
    threshold_curve,
)

__all__ = [
    "EXAMPLES_PER_CONFUSION",
    "Confusion",
    "CurvePoint",
    "EvalReport",
    "RouteScore",
    "evaluate",
    "neighbours_for",
    "threshold_curve",
]


def neighbours_for(
    embedder: Embedder,
    index: OpenIndex,
    texts: Sequence[str],
    k_max: int,
    batch_size: int = 64,
    *,
    progress: Steps | None = None,
    chunk: int = 512,
) -> list[list[Neighbour]]:
    """Embed `texts` once and fetch their `k_max` nearest examples once, `chunk` texts at a
    time so that `progress` hears how many are done."""
    if not texts:
        return []
    if progress is None:
        return index.searcher.search(embedder.encode_queries(list(texts), batch_size=batch_size), k_max)
    progress.stage(f"embedding and searching {len(texts)} queries", len(texts))
    out: list[list[Neighbour]] = []
    for start in range(0, len(texts), chunk):
        part = list(texts[start : start + chunk])
        out.extend(index.searcher.search(embedder.encode_queries(part, batch_size=batch_size), k_max))
        progress.advance(len(part))
    return out
