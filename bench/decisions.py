"""Do two setups route CLINC150 test alike? Each embeds the queries and searches its own index
(built with its own backend); the decisions are compared query by query under the same
decision parameters, and every difference is listed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from router_core import DecisionParams, Embedder, IndexStore, Router, RouteRequest
from router_core.pipeline import vote_only

KEEP_EXAMPLES = 20


def routed(
    embedder: Embedder, store: IndexStore, texts: Sequence[str], params: Mapping[str, DecisionParams]
) -> dict[str, list[tuple[str, float]]]:
    """(route, score) of every text under each named parameter set, on the store's live version."""
    version = store.live_version()
    if version is None:
        raise RuntimeError("no live index version to route with")
    index = store.open_version(version)
    try:
        table = vote_only(index.table)
        requests = [RouteRequest.query(t) for t in texts]
        routing = Router(index, embedder).routing(requests, table=table, k=max(p.k for p in params.values()))
    finally:
        index.close()
    return {name: [(d.route, d.score) for d in routing.again(replace(table, params=p))] for name, p in params.items()}


def compare(
    texts: Sequence[str],
    before: Mapping[str, list[tuple[str, float]]],
    after: Mapping[str, list[tuple[str, float]]],
) -> dict[str, Any]:
    """Per parameter set: how many decisions differ, and the first few differences."""
    out: dict[str, Any] = {}
    for name, old in before.items():
        new = after[name]
        changed = [
            {"query": t, "before": o[0], "after": n[0], "score_before": round(o[1], 5), "score_after": round(n[1], 5)}
            for t, o, n in zip(texts, old, new, strict=True)
            if o[0] != n[0]
        ]
        scores = [abs(o[1] - n[1]) for o, n in zip(old, new, strict=True)]
        out[name] = {
            "queries": len(texts),
            "changed": len(changed),
            "max_score_difference": round(max(scores, default=0.0), 7),
            "examples": changed[:KEEP_EXAMPLES],
        }
    return out
