"""Which decisions the decision log selects (service/decision_log/policy.py): the band around
a route's own threshold, the lead band, hybrid escalations and the modes, on decisions as the
vote makes them."""

from __future__ import annotations

import math

from router_core import Decision
from router_core.decision_log import DecisionLogSettings, RecordMode
from router_core.params import DecisionParams
from service.decision_log.policy import is_uncertain, sampled, selection

PARAMS = DecisionParams(threshold=0.5, margin=0.1, route_thresholds={"billing": 0.7})


def decision(route: str = "coding", *, score: float = 0.9, lead: float = math.inf, fallback: bool = False) -> Decision:
    return Decision(route=route, fallback=fallback, score=score, reason="vote", votes=(), neighbours=(), lead=lead)


def test_the_band_is_measured_from_the_routes_own_threshold() -> None:
    """0.74 is within 0.05 of billing's 0.7 but far above the global 0.5: uncertain for
    billing, not for coding."""
    assert is_uncertain(decision("billing", score=0.74), PARAMS, escalated=False, band=0.05, lead_band=0.0)
    assert not is_uncertain(decision("coding", score=0.74), PARAMS, escalated=False, band=0.05, lead_band=0.0)
    assert not is_uncertain(decision("billing", score=0.76), PARAMS, escalated=False, band=0.05, lead_band=0.0)


def test_the_lead_band_selects_a_close_runner_up_and_never_a_lone_route() -> None:
    """A lead under margin + lead_band (0.1 + 0.2) is uncertain; a route alone among the
    neighbours (infinite lead) is not."""
    assert is_uncertain(decision(lead=0.25), PARAMS, escalated=False, band=0.0, lead_band=0.2)
    assert not is_uncertain(decision(lead=0.35), PARAMS, escalated=False, band=0.0, lead_band=0.2)
    assert not is_uncertain(decision(lead=math.inf), PARAMS, escalated=False, band=0.0, lead_band=1.0)


def test_fallbacks_and_escalations_are_always_uncertain() -> None:
    confident = decision(score=0.95)
    assert not is_uncertain(confident, PARAMS, escalated=False, band=0.05, lead_band=0.2)
    assert is_uncertain(confident, PARAMS, escalated=True, band=0.05, lead_band=0.2)
    fallback = decision("default", score=0.2, fallback=True)
    assert is_uncertain(fallback, PARAMS, escalated=False, band=0.0, lead_band=0.0)


def test_the_modes() -> None:
    """none selects nothing; uncertain only the uncertain; all the rest as sampled."""
    confident, escalated = decision(score=0.95), decision(score=0.95)
    modes: tuple[tuple[RecordMode, tuple[str | None, str | None]], ...] = (
        ("none", (None, None)),
        ("uncertain", (None, "uncertain")),
        ("all", ("sampled", "uncertain")),
    )
    for mode, expected in modes:
        settings = DecisionLogSettings(record=mode)
        got = (
            selection(settings, confident, PARAMS, escalated=False),
            selection(settings, escalated, PARAMS, escalated=True),
        )
        assert got == expected, mode


def test_sampling_is_even_over_sequential_request_ids() -> None:
    """Clients often number their request ids: 2,000 sequential ids at rates 0.1, 0.25 and 0.5
    are each sampled within 3 points of the rate, and the same id is always sampled alike."""
    ids = [f"req-{i}" for i in range(2000)]
    for rate in (0.1, 0.25, 0.5):
        share = sum(sampled(i, 0, rate) for i in ids) / len(ids)
        assert abs(share - rate) < 0.03, (rate, share)
    assert [sampled(i, 0, 0.3) for i in ids[:50]] == [sampled(i, 0, 0.3) for i in ids[:50]]
