"""The issue's targets, checked against a result document."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Result = Mapping[str, Any]


def _get(result: Result, *path: str | int) -> Any:
    node: Any = result
    for key in path:
        if node is None:
            return None
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _level(result: Result, clients: int) -> Mapping[str, Any] | None:
    levels = _get(result, "speed", "throughput", "levels") or []
    return next((lv for lv in levels if lv.get("clients") == clients), None)


def _check(name: str, target: str, value: Any, ok: Callable[[Any], bool], shown: str) -> dict[str, Any]:
    return {
        "name": name,
        "target": target,
        "value": value,
        "shown": shown if value is not None else "not measured",
        "met": bool(ok(value)) if value is not None else None,
    }


def check_targets(result: Result) -> list[dict[str, Any]]:
    """One row per target: what it asks, the measured value and whether it is met."""
    http = _get(result, "speed", "latency", "http", "p50_vs_bare_encode")
    top = _level(result, 32)
    concurrent = top.get("vs_single_client") if top else None
    reindex = _get(result, "speed", "reindex", "in_process", "total_s")
    quality = []
    for key, model in (("ours_calibrated", "base model"), ("ours_finetuned_calibrated", "fine-tuned")):
        cal = _get(result, "quality", key)
        if cal is None and key != "ours_calibrated":
            continue
        in_scope = _get(cal, "in_scope_accuracy")
        recall = _get(cal, "fallback_recall")
        quality += [
            _check(
                f"calibrated in-scope accuracy (test, {model})",
                ">= 95%",
                in_scope,
                lambda v: v >= 0.95,
                f"{in_scope:.1%}" if in_scope is not None else "",
            ),
            _check(
                f"calibrated fallback recall (test, {model})",
                ">= 80%",
                recall,
                lambda v: v >= 0.80,
                f"{recall:.1%}" if recall is not None else "",
            ),
        ]
    return [
        *quality,
        _check(
            "classify p50 over HTTP vs bare encode of the query",
            "<= 1.5x",
            http,
            lambda v: v <= 1.5,
            f"{http:.2f}x" if http is not None else "",
        ),
        _check(
            "throughput, 32 concurrent clients vs 1 client",
            ">= 3x",
            concurrent,
            lambda v: v >= 3.0,
            f"{concurrent:.2f}x" if concurrent is not None else "",
        ),
        _check(
            "re-index after one route change (model loaded)",
            "< 2 s",
            reindex,
            lambda v: v < 2.0,
            f"{reindex:.2f} s" if reindex is not None else "",
        ),
    ]
