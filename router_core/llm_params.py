"""The decision mode and the parameters of the LLM decision layer (see router_core.llm_routing)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from router_core.params import steps, tunable

Mode = Literal["embedding", "llm", "hybrid"]


@dataclass(frozen=True)
class LLMRoutingParams:
    """`_router.yaml: llm:` what the decision model is shown, and the hybrid's uncertain band.

    A hybrid decision is escalated when the vote is ambiguous (lead under the margin), when the
    best similarity lies in [threshold - band_below, threshold + band_above), or when a routed
    winner leads the runner-up by less than `min_lead` of the vote.
    """

    candidates: int = tunable(3, "routes offered to the model in hybrid mode (best first)", grid=(2, 3, 5), ge=1, le=20)
    band_below: float = tunable(
        0.01, "escalate best similarities this far under the threshold", grid=steps(0.0, 0.1, 0.01), ge=0.0, le=1.0
    )
    band_above: float = tunable(
        0.05, "escalate best similarities this far over the threshold", grid=steps(0.0, 0.1, 0.01), ge=0.0, le=1.0
    )
    min_lead: float = tunable(
        0.2,
        "escalate routed decisions whose lead over the runner-up is under this share of the vote",
        grid=(0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4),
        ge=0.0,
        le=1.0,
    )
    examples_per_route: int = tunable(2, "examples shown per route", grid=(0, 2, 5), ge=0, le=20)
    context_messages: int = tunable(4, "conversation messages shown before the routed one", grid=(0, 2, 4), ge=0, le=20)

    def to_dict(self) -> dict[str, object]:
        """JSON form (stored in every index version)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}
