"""Routing quality of this router on CLINC150: routes' defaults, and calibrated on val."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

from indexer.calibration import DEFAULT_GRID, calibrate
from indexer.evaluation import EvalReport, evaluate
from indexer.importer import route_name_for
from indexer.labelled import OOS_LABEL, LabelledQuery
from router_core import DecisionParams, Embedder, IndexStore, Router, RouteRequest
from router_core.pipeline import vote_only

KEEP_ROUTE_ROWS = 10
KEEP_CONFUSIONS = 15


def gold_labels(queries: Sequence[LabelledQuery]) -> list[str]:
    """Gold labels as route names (the importer's naming); `oos` stays `oos`."""
    return [q.label if q.label == OOS_LABEL else route_name_for(q.label) for q in queries]


def summary(report: EvalReport) -> dict[str, Any]:
    """The headline figures, the worst routes and the most frequent confusions."""
    data = report.to_dict()
    data["per_route"] = data["per_route"][:KEEP_ROUTE_ROWS]
    data["confusions"] = data["confusions"][:KEEP_CONFUSIONS]
    data["route_confusions"] = data["route_confusions"][:KEEP_CONFUSIONS]
    return data


def our_quality(
    embedder: Embedder,
    store: IndexStore,
    val: Sequence[LabelledQuery],
    test: Sequence[LabelledQuery],
    *,
    log: Any = print,
) -> dict[str, Any]:
    """Evaluate the live version on test with its own parameters and with parameters
    calibrated on val (one embedding pass and one neighbour search per split)."""
    version = store.live_version()
    if version is None:
        raise RuntimeError("no live index version to evaluate")
    index = store.open_version(version)
    try:
        table = vote_only(index.table)
        base = table.params
        routes = [r.name for r in table.routes]
        k_max = max(DEFAULT_GRID.k_max, base.k)
        t0 = time.perf_counter()
        router = Router(index, embedder)
        val_routing = router.routing([RouteRequest.query(q.text) for q in val], table=table, k=k_max)
        val_neighbours = [val_routing.found.neighbours[q.text] for q in val]
        test_routing = router.routing([RouteRequest.query(q.text) for q in test], table=table, k=k_max)
        search_s = time.perf_counter() - t0
        log(f"neighbours of {len(val)} val + {len(test)} test queries in {search_s:.1f} s")
    finally:
        index.close()
    val_gold, test_gold = gold_labels(val), gold_labels(test)
    test_texts = [q.text for q in test]

    def scored(params: DecisionParams) -> dict[str, Any]:
        decisions = test_routing.again(replace(table, params=params))
        report = evaluate(decisions, test_gold, params.default_route, texts=test_texts, routes=routes)
        return {**summary(report), "params": params.to_dict()}

    t0 = time.perf_counter()
    result = calibrate(val_neighbours, val_gold, base, routes=routes)
    calibration_s = time.perf_counter() - t0
    log(f"calibrated on val in {calibration_s:.1f} s: {result.params.to_dict()}")
    calibrated = scored(result.params)
    calibrated["calibration"] = {
        "seconds": round(calibration_s, 2),
        "objective_val": result.objective,
        "oos_share": result.oos_share,
        "oos_weight": result.oos_weight,
        "val_scores": asdict(result.scores),
        "variants": [
            {"name": v.name, "adopted": v.adopted, "params": v.params.to_dict(), "val_scores": asdict(v.scores)}
            for v in result.variants
        ],
        "route_thresholds_kept": result.route_thresholds_kept,
        "heldout_gain": result.heldout_gain,
        "engine_mismatches": result.engine_mismatches,
    }
    return {
        "ours_default": scored(base),
        "ours_calibrated": calibrated,
        "neighbour_search_s": round(search_s, 2),
        "k_max": k_max,
    }
