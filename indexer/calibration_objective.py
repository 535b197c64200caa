"""The objective calibration maximises, scored for many settings at once.

Weighted accuracy with the fallback as a class of its own (see `indexer.calibration`): an
in-scope query weighs 1, an out-of-scope one `oos_weight`; `Scorer` scores an (M, N) array of
predictions in one go, and `paired_gain` compares two settings query by query.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from router_core.engine import FALLBACK
from router_core.neighbours import FloatArray, IntArray


@dataclass(frozen=True)
class Scores:
    """The objective and the figures behind it, for one setting.

    `fallback_precision` is the share of fallbacks that were right at the declared out-of-scope
    share (out-of-scope queries reweighted, like the objective): a validation file with 3%
    out-of-scope queries would otherwise read 40% where traffic with 20% reads 85%.
    `fallback_precision_in_file` is the same on the file's own mix.
    """

    objective: float
    accuracy: float
    in_scope_accuracy: float
    fallback_recall: float
    fallback_precision: float
    fallback_precision_in_file: float = 0.0


def oos_weight_for(in_scope: int, out_of_scope: int, share: float) -> float:
    """The weight per out-of-scope query that makes them `share` of the objective."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"oos share must be between 0 and 1, not {share}")
    if out_of_scope == 0:
        return 1.0
    return share / (1.0 - share) * in_scope / out_of_scope


class Scorer:
    """Scores predictions (route ids, FALLBACK for the default route) against gold ids."""

    def __init__(self, gold: IntArray, weights: FloatArray) -> None:
        self.gold = gold
        self.weights = weights
        self.oos = gold == FALLBACK
        self.total = float(weights.sum())

    def __call__(self, pred: IntArray) -> Scores:
        return self.many(pred[None, :])[0]

    def many(self, preds: IntArray) -> list[Scores]:
        """Scores of each row of an (M, N) array of predictions, vectorised."""
        correct = preds == self.gold[None, :]
        said = preds == FALLBACK
        n_in, n_oos = int((~self.oos).sum()), int(self.oos.sum())
        objective = correct.astype(np.float64) @ self.weights / self.total
        accuracy = correct.mean(axis=1)
        in_scope = correct[:, ~self.oos].sum(axis=1) / n_in if n_in else np.zeros(len(preds))
        recall = said[:, self.oos].sum(axis=1) / n_oos if n_oos else np.zeros(len(preds))
        caught = said & self.oos[None, :]
        said_w = said.astype(np.float64) @ self.weights
        caught_w = caught.astype(np.float64) @ self.weights
        precision = np.divide(caught_w, said_w, out=np.zeros(len(preds)), where=said_w > 0)
        said_n, caught_n = said.sum(axis=1), caught.sum(axis=1)
        in_file = np.divide(caught_n, said_n, out=np.zeros(len(preds)), where=said_n > 0)
        return [
            Scores(float(o), float(a), float(i), float(r), float(q), float(f))
            for o, a, i, r, q, f in zip(objective, accuracy, in_scope, recall, precision, in_file, strict=True)
        ]


def paired_gain(new: IntArray, old: IntArray, scorer: Scorer) -> tuple[float, float]:
    """Objective gain of `new` over `old` and its standard error over the queries."""
    diff = scorer.weights * ((new == scorer.gold).astype(np.float64) - (old == scorer.gold))
    n = len(diff)
    gain = float(diff.sum() / scorer.total)
    se = float(np.sqrt(n) * diff.std(ddof=1) / scorer.total) if n > 1 else 0.0
    return gain, se


def halves(gold: IntArray) -> IntArray:
    """Two folds stratified by label: each label's queries alternate between them."""
    fold = np.zeros(len(gold), dtype=np.int64)
    seen: dict[int, int] = {}
    for i, label in enumerate(gold.tolist()):
        fold[i] = seen.get(label, 0) % 2
        seen[label] = seen.get(label, 0) + 1
    return fold
