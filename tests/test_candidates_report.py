"""The rule `python -m bench --candidates` applies to a default candidate: within 0.5 points of
MiniLM on English (CLINC150 in-scope and the shipped test file, both calibrated) and faster."""

from __future__ import annotations

from typing import Any

import pytest

from bench.candidates_report import render, verdicts


def result(clinc: float, shipped: float, p50_ms: float) -> dict[str, Any]:
    """A run of MiniLM (88.9%, 96.2%, 4.8 ms) and one candidate with the given figures."""

    def quality(c: float, s: float) -> dict[str, Any]:
        return {
            "clinc150": {"test": {"in_scope_accuracy": c, "fallback_recall": 0.7}, "index_build_s": 10.0},
            "shipped": {"as_shipped": {"accuracy": s}, "calibrated": {"accuracy": s}, "multilingual": {}},
        }

    def speed(p50: float) -> dict[str, Any]:
        timing = {"p50_ms": p50, "p99_ms": 2 * p50}
        memory = {"rss_mib": 200.0, "peak_mib": 220.0}
        return {
            "encode": {"idle": timing, "neighbour": timing},
            "load_s": 0.3,
            "after_load": memory,
            "after_encode": memory,
        }

    return {
        "command": "python -m bench --candidates",
        "seconds": 1.0,
        "load_average": {"start": [1.0], "before_speed": [1.0], "end": [1.0]},
        "models": ["all-MiniLM-L6-v2", "candidate"],
        "quality": {"all-MiniLM-L6-v2": quality(0.889, 0.9625), "candidate": quality(clinc, shipped)},
        "speed": {"all-MiniLM-L6-v2": speed(4.8), "candidate": speed(p50_ms)},
    }


@pytest.mark.parametrize(
    ("clinc", "shipped", "p50_ms", "verdict"),
    [
        (0.885, 0.96, 1.5, "a default candidate"),  # -0.4 and -0.25 points, faster
        (0.883, 0.9625, 1.5, "CLINC150 in-scope -0.6 points"),
        (0.889, 0.90, 1.5, "shipped test -6.2 points"),
        (0.95, 1.0, 25.0, "not faster"),
    ],
)
def test_a_candidate_must_match_minilm_on_english_and_be_faster(
    clinc: float, shipped: float, p50_ms: float, verdict: str
) -> None:
    """Within 0.5 points on both English measures and a lower p50 makes a candidate; else the verdict says why."""
    said = verdicts(result(clinc, shipped, p50_ms))["candidate"]
    assert verdict in said
    assert verdict in render(result(clinc, shipped, p50_ms))
