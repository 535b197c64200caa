"""The guard against overfitting: what adding examples would do, before anything is saved.

Adding examples to a route only adds points to the index, so the k nearest examples of any
query after the change are its k nearest now merged with the new examples; the decision is
the same pure function of those neighbours (`router_core.decision`). The guard applies that to
the evaluation files and to the reviewed queries: "this change fixes N reviewed queries and
breaks M evaluation queries", with the in-scope and fallback figures before and after.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from router_core.decision import Decision, decide_many
from router_core.embedding import Embedder, Vectors
from router_core.evaluation import evaluate
from router_core.labelled import LabelledQuery, canonical_labels, is_fallback_label
from router_core.neighbours import Neighbour
from router_core.store import OpenIndex


@dataclass(frozen=True)
class Candidate:
    """An example about to be added to a route."""

    text: str
    route: str


@dataclass(frozen=True)
class Figures:
    """The evaluation figures of one side of the change."""

    queries: int
    accuracy: float
    in_scope_accuracy: float
    fallback_recall: float
    fallback_precision: float


@dataclass(frozen=True)
class Moved:
    """A query whose decision the change would move (or not): its label, before and after."""

    text: str
    label: str
    before: str
    after: str


@dataclass(frozen=True)
class Baseline:
    """Labelled queries decided on one index version: their vectors and k nearest examples."""

    version: str
    texts: tuple[str, ...]
    labels: tuple[str, ...]  # route names; the default route's name for "should fall back"
    vectors: Vectors
    neighbours: tuple[tuple[Neighbour, ...], ...]


@dataclass(frozen=True)
class GuardReport:
    """What a change would do to the evaluation files and the reviewed queries."""

    eval_before: Figures
    eval_after: Figures
    fixed: tuple[Moved, ...]  # reviewed queries that would go where they should
    unfixed: tuple[Moved, ...]  # reviewed queries that would still go elsewhere
    broken: tuple[Moved, ...]  # evaluation queries right before, wrong after
    mended: tuple[Moved, ...]  # evaluation queries wrong before, right after

    @property
    def summary(self) -> str:
        """The one line the review shows before saving."""
        return (
            f"this change fixes {len(self.fixed)} reviewed quer{'y' if len(self.fixed) == 1 else 'ies'} "
            f"and breaks {len(self.broken)} evaluation quer{'y' if len(self.broken) == 1 else 'ies'}"
        )


def baseline(
    index: OpenIndex, embedder: Embedder, queries: Sequence[LabelledQuery], *, batch_size: int = 64
) -> Baseline:
    """Embed and search labelled queries once on `index` (their labels as its route names)."""
    table = index.table
    default = table.params.default_route
    names = {r.name for r in table.routes}
    labels = [default if is_fallback_label(g, default) else g for g in canonical_labels(queries, names, default)]
    texts = [q.text for q in queries]
    vectors = (
        embedder.encode_queries(texts, batch_size=batch_size)
        if texts
        else np.zeros((0, embedder.dimension), np.float32)
    )
    found = index.searcher.search(vectors, table.params.k) if texts else []
    return Baseline(index.version, tuple(texts), tuple(labels), vectors, tuple(tuple(row) for row in found))


def guard(
    index: OpenIndex, embedder: Embedder, candidates: Sequence[Candidate], evals: Baseline, reviewed: Baseline
) -> GuardReport:
    """Decide the evaluation and reviewed queries with and without `candidates` added."""
    params = index.table.params
    new = (
        embedder.encode_documents([c.text for c in candidates])
        if candidates
        else np.zeros((0, embedder.dimension), np.float32)
    )

    def both(side: Baseline) -> tuple[list[Decision], list[Decision]]:
        before = decide_many(side.neighbours, params) if side.texts else []
        after = decide_many(_with_candidates(side, new, candidates), params) if side.texts else []
        return before, after

    eval_before, eval_after = both(evals)
    rev_before, rev_after = both(reviewed)
    moved_eval = _moved(evals, eval_before, eval_after)
    moved_rev = _moved(reviewed, rev_before, rev_after)
    return GuardReport(
        eval_before=_figures(evals, eval_before, params.default_route),
        eval_after=_figures(evals, eval_after, params.default_route),
        fixed=tuple(m for m in moved_rev if m.after == m.label),
        unfixed=tuple(m for m in moved_rev if m.after != m.label),
        broken=tuple(m for m in moved_eval if m.before == m.label != m.after),
        mended=tuple(m for m in moved_eval if m.before != m.label == m.after),
    )


def _with_candidates(side: Baseline, new: Vectors, candidates: Sequence[Candidate]) -> list[list[Neighbour]]:
    """Each query's neighbours as if `candidates` were in the index (decide_many keeps the k best)."""
    if not candidates:
        return [list(row) for row in side.neighbours]
    sims = np.asarray(side.vectors, dtype=np.float32) @ np.asarray(new, dtype=np.float32).T
    return [
        [*row, *(Neighbour(c.text, c.route, float(sims[i, j])) for j, c in enumerate(candidates))]
        for i, row in enumerate(side.neighbours)
    ]


def _moved(side: Baseline, before: Sequence[Decision], after: Sequence[Decision]) -> list[Moved]:
    return [
        Moved(text, label, b.route, a.route)
        for text, label, b, a in zip(side.texts, side.labels, before, after, strict=True)
    ]


def _figures(side: Baseline, decisions: Sequence[Decision], default_route: str) -> Figures:
    if not side.texts:
        return Figures(0, 0.0, 0.0, 0.0, 0.0)
    r = evaluate(decisions, side.labels, default_route)
    return Figures(r.queries, r.accuracy, r.in_scope_accuracy, r.fallback_recall, r.fallback_precision)
