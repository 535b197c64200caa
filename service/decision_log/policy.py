"""Which decisions the log records: the mode (`none`, `uncertain`, `all`), then the sampling
rate, decided per request id so that replicas agree. Pure and cheap: it runs on the event loop
for every routed request."""

from __future__ import annotations

import hashlib
import math

from router_core import Decision
from router_core.decision_log import DecisionLogSettings, RecordedAs
from router_core.params import DecisionParams


def is_uncertain(decision: Decision, params: DecisionParams, *, escalated: bool, band: float, lead_band: float) -> bool:
    """A fallback, a hybrid escalation, a best similarity within `band` of its route's threshold,
    or a winner leading the runner-up by less than the margin plus `lead_band`."""
    if decision.fallback or escalated:
        return True
    threshold = params.route_thresholds.get(decision.route, params.threshold)
    if abs(decision.score - threshold) <= band:
        return True
    return math.isfinite(decision.lead) and decision.lead < params.margin + lead_band


def sampled(request_id: str, item: int, rate: float) -> bool:
    """Whether this request falls in the sample: deterministic in the request id, so replicas
    agree, and spread evenly however alike the ids are (the first 8 bytes of a BLAKE2b digest
    of "<request id>#<item>", read as a fraction of 2**64; CRC-32 put 40 sequential ids
    "sample-0".."sample-39" all above 0.25)."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.blake2b(f"{request_id}#{item}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < rate


def selection(
    settings: DecisionLogSettings, decision: Decision, params: DecisionParams, *, escalated: bool
) -> RecordedAs | None:
    """Why the mode selects this decision (`uncertain` or `sampled`), or None when it does not."""
    if settings.record == "none":
        return None
    uncertain = is_uncertain(decision, params, escalated=escalated, band=settings.band, lead_band=settings.lead_band)
    if uncertain:
        return "uncertain"
    return "sampled" if settings.record == "all" else None
