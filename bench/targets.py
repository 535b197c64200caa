"""The issues' targets, checked against a result document: issue 5 (quality and speed of the
router) and issue 15 (embedding backends, measured side by side in the same run)."""

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


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _ratio(a: Any, b: Any) -> float | None:
    return round(a / b, 3) if isinstance(a, int | float) and isinstance(b, int | float) and b else None


def check_backend_targets(result: Result) -> list[dict[str, Any]]:
    """Issue 15: one row per target, each figure from this run."""
    bare = _get(result, "speed", "bare_encode") or {}
    default_idle = _get(bare, "default", "idle", "p50_ms")
    today_idle = _get(bare, "today", "idle", "p50_ms")
    p50_vs_today = _ratio(default_idle, today_idle)
    p99_loaded = _get(bare, "default", "p99_ratio")
    http_vs_bare = _get(result, "speed", "service", "default", "latency", "http", "p50_vs_bare_encode")
    top = {
        key: next((lv for lv in levels if lv.get("clients") == 32), None)
        for key in ("today", "default")
        if (levels := _get(result, "speed", "service", key, "throughput", "levels"))
    }
    tput = _ratio(_get(top, "default", "requests_per_s"), _get(top, "today", "requests_per_s"))
    decisions = _get(result, "decisions_vs_today") or {}
    changed = sum(v["changed"] for v in decisions.values()) if decisions else None
    builds = _get(result, "speed", "index_build_by_setup") or {}
    build_speedup = _ratio(builds.get("today"), builds.get("default"))
    rows = [
        _check(
            "bare encode of one query, default backend vs today's torch path (p50, side by side)",
            "<= 0.2x",
            p50_vs_today,
            lambda v: v <= 0.2,
            f"{_fmt(p50_vs_today, '.2f')}x ({default_idle} vs {today_idle} ms)",
        ),
        _check(
            "bare encode p99 beside a CPU-heavy neighbour vs idle (default backend)",
            "<= 3x",
            p99_loaded,
            lambda v: v <= 3.0,
            f"{_fmt(p99_loaded, '.2f')}x ({_get(bare, 'default', 'neighbour', 'p99_ms')} vs "
            f"{_get(bare, 'default', 'idle', 'p99_ms')} ms)",
        ),
        _check(
            "classify p50 over HTTP vs bare encode, same backend (default)",
            "<= 1.3x",
            http_vs_bare,
            lambda v: v <= 1.3,
            f"{_fmt(http_vs_bare, '.2f')}x",
        ),
        _check(
            "throughput at 32 clients, default vs today's path (same run)",
            ">= 4x",
            tput,
            lambda v: v >= 4.0,
            f"{_fmt(tput, '.2f')}x ({_get(top, 'default', 'requests_per_s')} vs "
            f"{_get(top, 'today', 'requests_per_s')} req/s)",
        ),
        _check(
            "CLINC150 test decisions changed vs today's path (defaults and calibrated)",
            "0 (or listed)",
            changed,
            lambda v: v == 0,
            f"{changed} of {sum(v['queries'] for v in decisions.values())}" if decisions else "",
        ),
        _check(
            "CLINC150 index build (all train examples), default vs today's path",
            ">= 2x faster",
            build_speedup,
            lambda v: v >= 2.0,
            f"{_fmt(build_speedup, '.2f')}x ({builds.get('default')} vs {builds.get('today')} s)",
        ),
    ]
    for key, goal_in, model in (
        ("mpnet_calibrated", 0.92, "all-mpnet-base-v2"),
        ("mpnet_finetuned_calibrated", 0.95, "all-mpnet-base-v2 fine-tuned"),
    ):
        cal = _get(result, "quality", key)
        if cal is None:
            continue
        in_scope, recall = _get(cal, "in_scope_accuracy"), _get(cal, "fallback_recall")
        rows.append(
            _check(
                f"{model}, calibrated on val: in-scope accuracy / fallback recall (test)",
                f">= {goal_in:.0%} / >= 80%",
                None if in_scope is None or recall is None else (in_scope, recall),
                lambda v, g=goal_in: v[0] >= g and v[1] >= 0.80,
                f"{in_scope:.1%} / {recall:.1%}" if in_scope is not None and recall is not None else "",
            )
        )
    return rows
