"""The candidates table for BENCHMARKS.md, and the rule the issue sets for a new default.

A candidate may replace MiniLM as the default when it is within `MATCH_POINTS` of MiniLM on
English (CLINC150 calibrated in-scope accuracy, and the shipped test file calibrated for each
model) and faster (one query's encode, p50, idle). The table says which do; the choice is the
maintainers'.
"""

from __future__ import annotations

from typing import Any

from bench.sections import markers
from router_core.embedding import DEFAULT_MODEL

MATCH_POINTS = 0.5


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def verdicts(result: dict[str, Any]) -> dict[str, str]:
    """Per candidate: whether it matches MiniLM on English and is faster (the issue's rule)."""
    base_q, base_s = result["quality"][DEFAULT_MODEL], result["speed"][DEFAULT_MODEL]
    out = {}
    for model in result["models"]:
        if model == DEFAULT_MODEL:
            continue
        q, s = result["quality"][model], result["speed"][model]
        gaps = {
            "CLINC150 in-scope": _get(q, "clinc150", "test", "in_scope_accuracy")
            - _get(base_q, "clinc150", "test", "in_scope_accuracy"),
            "shipped test": _get(q, "shipped", "calibrated", "accuracy")
            - _get(base_q, "shipped", "calibrated", "accuracy"),
        }
        faster = _get(s, "encode", "idle", "p50_ms") < _get(base_s, "encode", "idle", "p50_ms")
        short = [f"{name} {100 * gap:+.1f} points" for name, gap in gaps.items() if gap < -MATCH_POINTS / 100]
        if short:
            out[model] = "does not match MiniLM on English: " + ", ".join(short)
        elif not faster:
            out[model] = "matches MiniLM on English (or does better) but is not faster"
        else:
            out[model] = "matches MiniLM on English (within 0.5 points) and is faster: a default candidate"
    return out


def render(result: dict[str, Any]) -> str:
    """The Markdown section, markers included."""
    start, end = markers("candidates")
    models = result["models"]
    languages = sorted(
        {lang for m in models for lang in _get(result["quality"][m], "shipped", "multilingual") or {}},
        key=lambda lang: (lang != "en", lang),
    )
    load = result["load_average"]
    lines = [
        start,
        "## Embedding models side by side (default candidates)",
        "",
        f"Command: `{result['command']}` ({result['seconds']:.0f} s; load average at start "
        f"{load['start']}, before the speed part {load['before_speed']}, at the end {load['end']}: the machine "
        "has 2 cores shared with other work, so compare the models within this run, as ratios).",
        "Quality through `python -m indexer` (import, reindex, calibrate, eval) with ROUTER_EMBEDDING__MODEL set; "
        'speed and memory in one process per model (`bench.worker`), the probes interleaved; "alone" is '
        "without the bench's neighbour process, not on an idle machine (see the load average).",
        "",
        "| | " + " | ".join(f"`{m}`" for m in models) + " |",
        "|---|" + "---|" * len(models),
    ]

    def row(name: str, values: list[str]) -> None:
        lines.append(f"| {name} | " + " | ".join(values) + " |")

    q = result["quality"]
    s = result["speed"]
    row(
        "CLINC150 in-scope accuracy (calibrated on val)",
        [_pct(_get(q[m], "clinc150", "test", "in_scope_accuracy")) for m in models],
    )
    row("CLINC150 fallback recall", [_pct(_get(q[m], "clinc150", "test", "fallback_recall")) for m in models])
    row("shipped test, shipped parameters", [_pct(_get(q[m], "shipped", "as_shipped", "accuracy")) for m in models])
    row(
        "shipped test, calibrated on shipped-val",
        [_pct(_get(q[m], "shipped", "calibrated", "accuracy")) for m in models],
    )
    for lang in languages:
        row(
            f"multilingual eval `{lang}`: accuracy / in-scope / fallback recall",
            [
                " / ".join(
                    _pct(_get(q[m], "shipped", "multilingual", lang, key))
                    for key in ("accuracy", "in_scope_accuracy", "fallback_recall")
                )
                for m in models
            ],
        )
    for name in ("sgd_multiturn", "multiwoz_multiturn"):
        row(
            f"{name}: all turns / follow-ups",
            [" / ".join(_pct(_get(q[m], name, "scores", key)) for key in ("all", "follow-up")) for m in models],
        )
    row(
        "CLINC150 index build (15,000 examples)",
        [
            "-" if _get(q[m], "clinc150", "index_build_s") is None else f"{q[m]['clinc150']['index_build_s']:.1f} s"
            for m in models
        ],
    )
    for when, label in (("idle", "alone"), ("neighbour", "beside a CPU-heavy neighbour")):
        row(
            f"encode one query, {label}: p50 / p99",
            [
                f"{_ms(_get(s[m], 'encode', when, 'p50_ms'))} / {_ms(_get(s[m], 'encode', when, 'p99_ms'))}"
                for m in models
            ],
        )
    base = _get(s[DEFAULT_MODEL], "encode", "idle", "p50_ms")
    row(
        "encode p50 alone, x MiniLM",
        ["-" if not base else f"{_get(s[m], 'encode', 'idle', 'p50_ms') / base:.2f}x" for m in models],
    )
    row("model load (in its process)", [f"{_get(s[m], 'load_s'):.2f} s" for m in models])
    row(
        "memory: RSS after load / peak",
        [
            f"{_get(s[m], 'after_load', 'rss_mib'):.0f} / {_get(s[m], 'after_encode', 'peak_mib'):.0f} MiB"
            for m in models
        ],
    )
    lines += ["", "Against the issue's rule (within 0.5 points of MiniLM on English, and faster):", ""]
    lines += [f"- `{m}`: {v}" for m, v in verdicts(result).items()]
    lines += [end, ""]
    return "\n".join(lines)
