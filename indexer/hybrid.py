"""Choose the hybrid mode's uncertain band for an escalation budget, by simulation.

The vote's decisions on a labelled file are fixed; a band (router_core.llm_routing:
`escalation_mask`) decides which of them the decision model would see. No model is called:
for each band the hybrid's accuracy is SIMULATED under two assumptions about the model,

- upper bound: right whenever it can be, i.e. when the gold route is among the offered
  candidates, or the query is out of scope (it can answer "none");
- probability p: right with probability p when it can be right, else wrong (expected values).

A query whose gold route is not offered is wrong either way. Escalation shares are weighted to
the declared out-of-scope share of traffic, like calibration's objective, because a validation
file's own mix is an accident (CLINC150 val holds 3% out-of-scope queries, its test 18%).
The chosen band maximises the simulated objective at p within the budget.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, TextIO

import numpy as np

from indexer.labelled import is_fallback_label
from router_core import Decision
from router_core.llm_routing import BandInputs, escalation_mask
from router_core.neighbours import BoolArray, FloatArray
from router_core.params import DecisionParams, LLMRoutingParams, specs_of

BAND = ("band_below", "band_above", "min_lead", "candidates")
DEFAULT_BUDGET = 0.10
DEFAULT_P = 0.9


@dataclass(frozen=True)
class BandScores:
    """One band's simulated figures (in-scope accuracy and fallback recall; objective weighs
    them at the declared out-of-scope share)."""

    escalated: float  # share of (weighted) queries put to the model
    escalated_raw: float  # share of the file's queries
    vote_on_escalated: float  # the vote's accuracy on the escalated queries
    vote_on_rest: float  # ... and on the others
    in_scope_upper: float
    recall_upper: float
    in_scope_p: float
    recall_p: float
    objective_p: float


@dataclass(frozen=True)
class BandTrial:
    """A band setting and its simulated figures."""

    llm: LLMRoutingParams
    scores: BandScores


@dataclass(frozen=True)
class HybridCalibration:
    """The chosen band, the vote alone, and the best bands tried."""

    chosen: BandTrial | None  # None when no band fits the budget
    vote: BandScores  # the vote alone (nothing escalated)
    budget: float
    p: float
    oos_share: float
    settings: int
    top: tuple[BandTrial, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""

        def trial(t: BandTrial) -> dict[str, Any]:
            return {"llm": t.llm.to_dict(), **asdict(t.scores)}

        return {
            "chosen": trial(self.chosen) if self.chosen else None,
            "vote": asdict(self.vote),
            "budget": self.budget,
            "p": self.p,
            "oos_share": self.oos_share,
            "settings": self.settings,
            "top": [trial(t) for t in self.top],
            "simulated": True,
        }


class BandSimulator:
    """Simulates bands on fixed decisions."""

    def __init__(
        self, decisions: Sequence[Decision], labels: Sequence[str], params: DecisionParams, oos_share: float
    ) -> None:
        self.inputs = BandInputs.of(decisions, params)
        default = params.default_route
        self.oos: BoolArray = np.array([is_fallback_label(g, default) for g in labels], bool)
        gold = [default if o else g for g, o in zip(labels, self.oos, strict=True)]
        self.vote_right: BoolArray = np.array([d.route == g for d, g in zip(decisions, gold, strict=True)], bool)
        self._rank: list[dict[str, int]] = [{r: i for i, r in enumerate(d.ranking)} for d in decisions]
        self._gold = gold
        n_oos, n_in = int(self.oos.sum()), int((~self.oos).sum())
        share = oos_share if n_oos and n_in else (1.0 if n_oos else 0.0)
        self.weights: FloatArray = np.where(self.oos, share / max(n_oos, 1), (1 - share) / max(n_in, 1)).astype(
            np.float64
        )
        self.oos_share = share
        self._offered: dict[int, BoolArray] = {}

    def gold_offered(self, candidates: int) -> BoolArray:
        """Whether the model could be right: out of scope ("none"), or gold among the candidates."""
        if candidates not in self._offered:
            self._offered[candidates] = np.array(
                [
                    o or r.get(g, candidates) < candidates
                    for o, r, g in zip(self.oos, self._rank, self._gold, strict=True)
                ],
                bool,
            )
        return self._offered[candidates]

    def scores(self, llm: LLMRoutingParams, p: float) -> BandScores:
        """The simulated figures of one band."""
        up = escalation_mask(self.inputs, llm)
        can = self.gold_offered(llm.candidates)
        upper = np.where(up, can, self.vote_right).astype(np.float64)
        expected = np.where(up, p * can, self.vote_right).astype(np.float64)
        ins, oos = ~self.oos, self.oos

        def mean(values: FloatArray, mask: BoolArray) -> float:
            return float(values[mask].mean()) if mask.any() else 0.0

        in_p, rec_p = mean(expected, ins), mean(expected, oos)
        return BandScores(
            escalated=float(self.weights[up].sum()),
            escalated_raw=float(up.mean()) if len(up) else 0.0,
            vote_on_escalated=mean(self.vote_right.astype(np.float64), up),
            vote_on_rest=mean(self.vote_right.astype(np.float64), ~up),
            in_scope_upper=mean(upper, ins),
            recall_upper=mean(upper, oos),
            in_scope_p=in_p,
            recall_p=rec_p,
            objective_p=(1 - self.oos_share) * in_p + self.oos_share * rec_p,
        )


def calibrate_band(
    decisions: Sequence[Decision],
    labels: Sequence[str],
    params: DecisionParams,
    current: LLMRoutingParams,
    *,
    budget: float = DEFAULT_BUDGET,
    p: float = DEFAULT_P,
    oos_share: float = 0.2,
    values: Mapping[str, tuple[Any, ...]] | None = None,
    top: int = 10,
) -> HybridCalibration:
    """Search the band (see the module docstring) on the vote's `decisions` for `labels`."""
    sim = BandSimulator(decisions, labels, params, oos_share)
    specs = [s for s in specs_of(LLMRoutingParams) if s.name in BAND]
    grids = [tuple((values or {}).get(s.name, s.grid)) for s in specs]
    trials = [
        BandTrial(llm, sim.scores(llm, p))
        for combo in itertools.product(*grids)
        for llm in [replace(current, **{s.name: v for s, v in zip(specs, combo, strict=True)})]
    ]
    fitting = [t for t in trials if t.scores.escalated <= budget]
    ranked = sorted(fitting, key=lambda t: (-round(t.scores.objective_p, 9), t.scores.escalated))
    return HybridCalibration(
        chosen=ranked[0] if ranked else None,
        vote=vote_only(sim),
        budget=budget,
        p=p,
        oos_share=sim.oos_share,
        settings=len(trials),
        top=tuple(ranked[:top]),
    )


def vote_only(sim: BandSimulator) -> BandScores:
    """The vote alone, nothing escalated."""
    right = sim.vote_right.astype(np.float64)
    ins, oos = ~sim.oos, sim.oos
    in_acc = float(right[ins].mean()) if ins.any() else 0.0
    rec = float(right[oos].mean()) if oos.any() else 0.0
    return BandScores(
        escalated=0.0,
        escalated_raw=0.0,
        vote_on_escalated=0.0,
        vote_on_rest=float(right.mean()) if len(right) else 0.0,
        in_scope_upper=in_acc,
        recall_upper=rec,
        in_scope_p=in_acc,
        recall_p=rec,
        objective_p=(1 - sim.oos_share) * in_acc + sim.oos_share * rec,
    )


@dataclass(frozen=True)
class BandOptions:
    """`calibrate --band`: the escalation budget and the simulated chance the model is right."""

    budget: float
    p: float

    def __post_init__(self) -> None:
        if not 0.0 < self.budget <= 1.0 or not 0.0 <= self.p <= 1.0:
            raise ValueError("--budget must be in (0, 1] and --p in [0, 1]")


def print_band(result: HybridCalibration, out: TextIO) -> None:
    """The band chosen for the budget, SIMULATED figures beside the vote alone."""
    from indexer.tables import pct, text_table

    print(
        f"\nhybrid band for at most {pct(result.budget)} of queries escalated (counted at {pct(result.oos_share)} "
        f"out-of-scope traffic). SIMULATED: no model was called; 'upper' assumes it is right whenever the gold "
        f"route is offered (or the query is out of scope), 'p={result.p}' that it is then right with that chance.",
        file=out,
    )
    rows: list[tuple[object, ...]] = [
        ("vote alone", "-", "-", pct(result.vote.in_scope_p), pct(result.vote.recall_p), "-", "-")
    ]
    for trial in ([result.chosen] if result.chosen else []) + list(result.top[1:6]):
        s, b = trial.scores, trial.llm
        setting = f"below {b.band_below} above {b.band_above} lead {b.min_lead} top {b.candidates}"
        rows.append(
            (
                setting,
                pct(s.escalated),
                f"{pct(s.vote_on_escalated)} / {pct(s.vote_on_rest)}",
                pct(s.in_scope_p),
                pct(s.recall_p),
                pct(s.in_scope_upper),
                pct(s.recall_upper),
            )
        )
    headers = [
        "band",
        "escalated",
        "vote right: esc. / rest",
        "in-scope (p)",
        "recall (p)",
        "in-scope (upper)",
        "recall (upper)",
    ]
    print(text_table(headers, rows), file=out)
    if result.chosen is None:
        print("no band keeps within the budget", file=out)
    else:
        print("chosen: the first row after the vote (in-sample; see bench.hybrid for test-file figures)", file=out)
