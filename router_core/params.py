"""Every routing parameter, declared once, side by side: the vote (`DecisionParams`), the
conversation rule (`ConversationParams`, `_router.yaml: conversation:`) and the LLM decision
layer (`LLMRoutingParams`, `_router.yaml: llm:`, and the `Mode`).

Each tunable parameter is one dataclass field with its metadata (`tunable`): default, bounds,
the values calibration tries and, for the vote's richer rules, the simple value that the plain
majority vote uses and the name of the variant that frees it. The route-file schema
(`_router.yaml`), the calibration grids and ladder, the YAML writer and the reports all derive
from these fields, so a new parameter is one field here plus the engine code that reads it.
All three sections are recorded in every index version (`RouteTable.to_dict`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_type_hints

Mode = Literal["embedding", "llm", "hybrid"]
Strategy = Literal["evidence", "last_message"]
TieBreak = Literal["sum", "max"]
VoteWeight = Literal["count", "similarity"]
ThresholdMode = Literal["neighbour", "winner"]


def steps(start: float, stop: float, step: float) -> tuple[float, ...]:
    """start, start + step, ... stop, rounded so that grid values print and compare cleanly."""
    count = round((stop - start) / step)
    return tuple(round(start + i * step, 4) for i in range(count + 1))


@dataclass(frozen=True)
class ParamSpec:
    """What the schema, calibration and reports know about one tunable parameter."""

    name: str
    doc: str
    grid: tuple[Any, ...]
    ge: float | None = None
    le: float | None = None
    simple: Any = None  # the plain vote's value; None: tuned from the first variant on
    variant: str = ""  # the calibration variant that frees it from `simple`
    after_vote: bool = False  # applied to a finished tally (calibration scores it vectorised)


def tunable(
    default: Any,
    doc: str,
    *,
    grid: tuple[Any, ...],
    ge: float | None = None,
    le: float | None = None,
    simple: Any = None,
    variant: str = "",
    after_vote: bool = False,
) -> Any:
    """A dataclass field declaring one tunable parameter (see `ParamSpec`)."""
    spec = {"doc": doc, "grid": grid, "ge": ge, "le": le, "simple": simple, "variant": variant}
    return field(default=default, metadata={"tunable": {**spec, "after_vote": after_vote}})


@dataclass(frozen=True)
class DecisionParams:
    """Explicit parameters of the routing decision (`_router.yaml`, recorded in each version)."""

    k: int = tunable(5, "how many nearest examples vote", grid=(1, 3, 5, 7, 10, 15, 20), ge=1, le=100)
    threshold: float = tunable(
        0.45,
        "the cosine similarity an example must reach to count (per route: the route file's threshold)",
        grid=steps(0.20, 0.95, 0.01),  # to 0.95: e5-style models put every pair of texts above 0.8
        ge=-1.0,
        le=1.0,
    )
    threshold_mode: ThresholdMode = tunable(
        "neighbour",
        "neighbour: only examples over the threshold vote; winner: all k vote and the winner's "
        "best similarity must clear its threshold",
        grid=("neighbour", "winner"),
        simple="neighbour",
        variant="+ threshold on the winner's best similarity",
    )
    vote: VoteWeight = tunable(
        "count",
        "count: one vote per example; similarity: votes weighted by similarity",
        grid=("count", "similarity"),
        simple="count",
        variant="+ similarity-weighted vote",
    )
    tie_break: TieBreak = tunable(
        "sum",
        "a tied vote goes to the route with the larger summed (sum) or best (max) similarity",
        grid=("sum", "max"),
        simple="sum",
        variant="+ tie-break by best similarity",
    )
    margin: float = tunable(
        0.0,
        "the winner's share of the vote must lead the runner-up's by this much, else ambiguous",
        grid=(0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5),
        ge=0.0,
        le=2.0,
        simple=0.0,
        variant="+ margin (ambiguity band)",
        after_vote=True,
    )
    route_thresholds: Mapping[str, float] = field(default_factory=dict)
    default_route: str = "default"

    def threshold_for(self, route: str) -> float:
        """The similarity a neighbour of `route` must reach to vote."""
        return self.route_thresholds.get(route, self.threshold)

    def tunable_values(self) -> dict[str, Any]:
        """The tunable parameters by name, in declaration order (what `_router.yaml` holds)."""
        return {spec.name: getattr(self, spec.name) for spec in SPECS}

    def to_dict(self) -> dict[str, Any]:
        """JSON form of every parameter, per-route thresholds and default route included."""
        return {
            **self.tunable_values(),
            "route_thresholds": dict(self.route_thresholds),
            "default_route": self.default_route,
        }

    def describe(self) -> str:
        """One line naming every tunable value, for tables and logs."""
        text = " ".join(f"{name}={_short(value)}" for name, value in self.tunable_values().items())
        if self.route_thresholds:
            text += f" +{len(self.route_thresholds)} route thresholds"
        return text


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def specs_of(cls: type[Any]) -> tuple[ParamSpec, ...]:
    """The tunable parameters a dataclass declares with `tunable`, in declaration order."""
    return tuple(
        ParamSpec(name=f.name, **f.metadata["tunable"]) for f in dataclasses.fields(cls) if "tunable" in f.metadata
    )


def pydantic_fields(cls: type[Any], *, tunable_only: bool = True) -> dict[str, Any]:
    """A dataclass's parameters as pydantic field definitions (for file schemas): the tunable
    ones with their bounds, and with `tunable_only=False` every field that has a plain default."""
    from pydantic import Field  # imported here: only the schema layer needs pydantic

    hints = get_type_hints(cls)
    specs = {spec.name: spec for spec in specs_of(cls)}
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        spec = specs.get(f.name)
        if spec is not None:
            out[f.name] = (hints[f.name], Field(default=f.default, ge=spec.ge, le=spec.le, description=spec.doc))
        elif not tunable_only and f.default is not dataclasses.MISSING:
            out[f.name] = (hints[f.name], Field(default=f.default))
    return out


SPECS: tuple[ParamSpec, ...] = specs_of(DecisionParams)
"""Every tunable parameter, in declaration order."""

TUNABLE_NAMES: tuple[str, ...] = tuple(s.name for s in SPECS)


@dataclass(frozen=True)
class ConversationParams:
    """`_router.yaml: conversation:` how the history takes part in the decision. A parameter
    declared with one value in its grid is not searched by calibration (window, floor_below
    and assistant_weight: flat on both multi-turn sets, see BENCHMARKS.md); fewer searched
    knobs, less to overfit."""

    strategy: Strategy = "evidence"
    window: int = tunable(
        6,
        "user messages read, the last one included (a bound on the work; the filter forgets older ones anyway)",
        grid=(6,),
        ge=1,
        le=50,
    )
    switch: float = tunable(
        0.03,
        "chance that a user message with evidence of its own changes the topic",
        grid=(0.01, 0.03, 0.1, 0.3),
        ge=0.0,
        le=1.0,
    )
    floor_below: float = tunable(
        0.1,
        "evidence counts similarity above the route's threshold minus this",
        grid=(0.1,),
        ge=0.0,
        le=1.0,
    )
    assistant_weight: float = tunable(0.5, "weight of assistant messages' evidence", grid=(0.5,), ge=0.0, le=2.0)
    context_weight: float = tunable(
        0.25,
        "weight of the evidence of each user message's context (it and the 3 messages before, their vectors mixed)",
        grid=(0.0, 0.25, 0.5, 1.0),
        ge=0.0,
        le=2.0,
    )
    unrelated_switch: float = tunable(
        0.0,
        "chance that the routed message changes the topic when it is unrelated to the window "
        "(under standalone_similarity); the larger of this and switch",
        grid=(0.0, 0.3, 0.6),
        ge=0.0,
        le=1.0,
    )
    # Not `after_vote`: it also sets which messages `unrelated_switch` applies to, in the filter.
    standalone_similarity: float = tunable(
        0.25,
        "a request less similar than this to every earlier message of the window is unrelated to it",
        grid=(0.20, 0.25, 0.30, 0.35),
        ge=-1.0,
        le=1.0,
    )
    standalone_words: int = tunable(
        2,
        "content words a message needs to count as a standalone request",
        grid=(1, 2, 3),
        ge=1,
        le=20,
        after_vote=True,
    )
    standalone_margin: float = tunable(
        0.05,
        "an unrelated request is routed against the conversation only this far over its route's threshold",
        grid=(0.0, 0.05, 0.1, 0.15),
        ge=0.0,
        le=1.0,
        after_vote=True,
    )
    follow_up_similarity: float = tunable(
        0.5,
        "a request at least this similar to one of the route set's follow-ups (_follow_ups.yaml) "
        "continues the conversation: never taken for an off-topic one (without follow-ups: no effect)",
        grid=(0.45, 0.5, 0.55, 0.6),
        ge=-1.0,
        le=1.0,
        after_vote=True,
    )

    def to_dict(self) -> dict[str, object]:
        """JSON form (stored in every index version)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def tunable_values(self) -> dict[str, Any]:
        """The parameters of the rule (everything but the strategy)."""
        return {spec.name: getattr(self, spec.name) for spec in specs_of(ConversationParams)}


# Parameters of the conversation rule before the filter: an index version that still records
# them opens with them ignored (a route file that names them is refused, naming the key).
RETIRED_CONVERSATION_PARAMS = frozenset({"decay", "gate_above"})


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
