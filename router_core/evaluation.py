"""Score routing decisions against labelled queries (pure: no model, no files).

Fallback is a class of its own: a query labelled `oos` (or with the default route's name) is
right when it falls back, and an in-scope query that falls back is wrong. `python -m indexer
eval` and the service's POST /v1/evaluate both score with this module.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from router_core.decision import Decision
from router_core.engine import FALLBACK, predict
from router_core.labelled import gold_ids, is_fallback_label
from router_core.neighbours import Neighbour, NeighbourArrays
from router_core.params import DecisionParams

EXAMPLES_PER_CONFUSION = 3
CURVE_THRESHOLDS = tuple(round(0.10 + 0.01 * i, 2) for i in range(81))
"""The global thresholds a report's accuracy curve is drawn over (0.10 to 0.90)."""


@dataclass(frozen=True)
class RouteScore:
    """Precision, recall and F1 of one route (or of the fallback, under the default route)."""

    route: str
    precision: float
    recall: float
    f1: float
    support: int  # queries labelled with this route
    predicted: int  # queries sent to this route


@dataclass(frozen=True)
class Confusion:
    """Queries of route `gold` that went to `predicted`, with a few of them."""

    gold: str
    predicted: str
    count: int
    examples: tuple[str, ...]


@dataclass(frozen=True)
class EvalReport:
    """How well decisions match the labels."""

    default_route: str
    queries: int
    in_scope: int
    out_of_scope: int
    accuracy: float
    in_scope_accuracy: float
    fallback_precision: float
    fallback_recall: float
    per_route: tuple[RouteScore, ...]  # the routes (never the fallback), sorted by F1, worst first
    fallback: RouteScore  # the fallback as a class: its precision, recall, labelled and decided
    confusions: tuple[Confusion, ...]  # most frequent first; fallback pairs included
    unknown_labels: tuple[str, ...]  # labels naming no route of the index

    @property
    def route_confusions(self) -> tuple[Confusion, ...]:
        """Confusions between two real routes (no fallback on either side)."""
        return tuple(c for c in self.confusions if self.default_route not in (c.gold, c.predicted))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["route_confusions"] = [asdict(c) for c in self.route_confusions[:20]]
        return data


def evaluate(
    decisions: Sequence[Decision | str],
    labels: Sequence[str],
    default_route: str,
    *,
    texts: Sequence[str] | None = None,
    routes: Sequence[str] | None = None,
) -> EvalReport:
    """Score decisions (or predicted route names) against gold labels.

    `texts`, the queries, supply the confusion examples; `routes`, the index's route names,
    let the report list labels that name no route (those queries can never be right).
    """
    if len(decisions) != len(labels) or (texts is not None and len(texts) != len(labels)):
        raise ValueError(f"{len(decisions)} decisions for {len(labels)} labels")
    predicted = [d if isinstance(d, str) else d.route for d in decisions]
    gold = [default_route if is_fallback_label(g, default_route) else g for g in labels]
    report = _report(predicted, gold, default_route, list(texts) if texts is not None else None)
    if routes is None:
        return report
    unknown = tuple(sorted({g for g in gold if g != default_route} - set(routes)))
    return replace(report, unknown_labels=unknown)


def _report(predicted: Sequence[str], gold: Sequence[str], default_route: str, texts: list[str] | None) -> EvalReport:
    n = len(gold)
    right = sum(p == g for p, g in zip(predicted, gold, strict=True))
    in_scope = [(p, g) for p, g in zip(predicted, gold, strict=True) if g != default_route]
    oos = n - len(in_scope)
    said_fallback = sum(p == default_route for p in predicted)
    caught = sum(p == g == default_route for p, g in zip(predicted, gold, strict=True))
    gold_count = Counter(gold)
    pred_count = Counter(predicted)
    hits = Counter(g for p, g in zip(predicted, gold, strict=True) if p == g)
    scores = []
    for route in sorted(set(gold) | set(predicted)):
        precision = _ratio(hits[route], pred_count[route])
        recall = _ratio(hits[route], gold_count[route])
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores.append(RouteScore(route, precision, recall, f1, gold_count[route], pred_count[route]))
    scores.sort(key=lambda s: (s.f1, s.route))
    fallback = next((s for s in scores if s.route == default_route), RouteScore(default_route, 0.0, 0.0, 0.0, 0, 0))
    pairs: dict[tuple[str, str], list[str]] = defaultdict(list)
    for i, (p, g) in enumerate(zip(predicted, gold, strict=True)):
        if p != g:
            pairs[(g, p)].append(texts[i] if texts is not None else "")
    confusions = sorted(
        (Confusion(g, p, len(ts), tuple(t for t in ts[:EXAMPLES_PER_CONFUSION] if t)) for (g, p), ts in pairs.items()),
        key=lambda c: (-c.count, c.gold, c.predicted),
    )
    return EvalReport(
        default_route=default_route,
        queries=n,
        in_scope=len(in_scope),
        out_of_scope=oos,
        accuracy=_ratio(right, n),
        in_scope_accuracy=_ratio(sum(p == g for p, g in in_scope), len(in_scope)),
        fallback_precision=_ratio(caught, said_fallback),
        fallback_recall=_ratio(caught, oos),
        per_route=tuple(s for s in scores if s.route != default_route),
        fallback=fallback,
        confusions=tuple(confusions),
        unknown_labels=(),
    )


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


@dataclass(frozen=True)
class CurvePoint:
    """Accuracy figures at one global threshold (per-route thresholds shifted alike)."""

    threshold: float
    accuracy: float
    in_scope_accuracy: float
    fallback_recall: float
    fallback_precision: float


def threshold_curve(
    neighbours: Sequence[Sequence[Neighbour]],
    labels: Sequence[str],
    params: DecisionParams,
    thresholds: Sequence[float],
    route_names: Sequence[str] = (),
) -> list[CurvePoint]:
    """Accuracy and fallback recall as the global threshold moves, everything else fixed."""
    arrays = NeighbourArrays.build(neighbours, route_names)
    gold = gold_ids(arrays, labels, params.default_route)
    oos = gold == FALLBACK
    points = []
    for t in thresholds:
        shift = t - params.threshold
        per_route = {r: v + shift for r, v in params.route_thresholds.items()}
        pred = predict(arrays, params, arrays.thresholds(t, per_route))
        correct = pred == gold
        said = pred == FALLBACK
        points.append(
            CurvePoint(
                threshold=float(t),
                accuracy=float(correct.mean()) if len(gold) else 0.0,
                in_scope_accuracy=_mean(correct[~oos]),
                fallback_recall=_mean(said[oos]),
                fallback_precision=_mean(oos[said]),
            )
        )
    return points


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else 0.0
