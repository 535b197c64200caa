"""semantic-router 1.1 on the same splits: run its runner in the peer venv, score its answers
with the same evaluation code as our router."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.peer_env import ensure_peer_env, peer_versions
from bench.quality import gold_labels, summary
from indexer.calibration import DEFAULT_OOS_SHARE
from indexer.evaluation import evaluate
from indexer.labelled import LabelledQuery, is_fallback_label

RUNNER = Path(__file__).resolve().parent / "peer_runner.py"


def run_peer(
    train: Path,
    val: Path,
    test: Path,
    work: Path,
    *,
    latency_queries: int,
    timeout: float,
    log: Any = print,
) -> dict[str, Any]:
    """Run the peer runner with the peer venv's python; return its JSON document."""
    python = ensure_peer_env(log=log)
    out = work / "peer-output.json"
    command = [
        str(python),
        str(RUNNER),
        "--train",
        str(train),
        "--val",
        str(val),
        "--test",
        str(test),
        "--out",
        str(out),
        "--latency-queries",
        str(latency_queries),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    t0 = time.perf_counter()
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"peer runner failed ({done.returncode}): {done.stderr[-3000:]}")
    raw: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    raw["versions"] = peer_versions(python)
    raw["wall_s"] = round(wall, 2)
    return raw


def _routes(predicted: Sequence[str | None], default_route: str) -> list[str]:
    return [default_route if p is None else p for p in predicted]


def _thresholded(top: Sequence[str], confidence: np.ndarray, threshold: float, default_route: str) -> list[str]:
    return [t if c >= threshold else default_route for t, c in zip(top, confidence, strict=True)]


def tune_threshold(
    top: Sequence[str],
    confidence: Sequence[float],
    gold: Sequence[str],
    default_route: str,
    oos_share: float = DEFAULT_OOS_SHARE,
) -> tuple[float, float]:
    """The confidence threshold maximising our calibration objective on val,
    (1 - oos_share) * in-scope accuracy + oos_share * fallback recall; (threshold, objective).
    """
    conf = np.asarray(confidence, dtype=np.float64)
    in_scope = np.array([not is_fallback_label(g, default_route) for g in gold])
    top_right = np.array([t == g for t, g in zip(top, gold, strict=True)])
    best = (float("-inf"), 0.0)
    for t in np.unique(np.concatenate([conf, [0.0, np.inf]])):
        accept = conf >= t
        in_acc = float((accept & top_right)[in_scope].mean()) if in_scope.any() else 0.0
        recall = float((~accept)[~in_scope].mean()) if (~in_scope).any() else 0.0
        objective = (1 - oos_share) * in_acc + oos_share * recall
        if objective > best[0] + 1e-12:
            best = (objective, float(t))
    return best[1], best[0]


def peer_quality(
    raw: dict[str, Any],
    val: Sequence[LabelledQuery],
    test: Sequence[LabelledQuery],
    default_route: str,
    routes: Sequence[str],
) -> dict[str, Any]:
    """Score the peer's default and fitted answers on test like ours."""
    test_gold, val_gold = gold_labels(test), gold_labels(val)
    texts = [q.text for q in test]

    def scored(predicted: Sequence[str]) -> dict[str, Any]:
        return summary(evaluate(predicted, test_gold, default_route, texts=texts, routes=routes))

    threshold, objective = tune_threshold(raw["val"]["top"], raw["val"]["confidence"], val_gold, default_route)
    tuned = _thresholded(raw["test"]["top"], np.asarray(raw["test"]["confidence"]), threshold, default_route)
    return {
        "peer_default": scored(_routes(raw["test"]["default"], default_route)),
        "peer_fit": scored(_routes(raw["test"]["fit"], default_route)),
        "peer_fit_tuned": {**scored(tuned), "threshold": threshold, "objective_val": objective},
    }
