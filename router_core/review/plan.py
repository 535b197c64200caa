"""A review action planned before it is saved: the file's edit, the guard's figures and a
token that saving must present (the service's Review tab and `python -m indexer review` plan
with this one function).

`example`: the decisions' texts become examples of a route (never a text held out in an
evaluation file); `eval`: they become labelled lines of the review's evaluation file (never a
text that is an example: held out).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from router_core.decision_log import StoredDecision
from router_core.embedding import Embedder
from router_core.examples_writer import EditRefused, FileEdit, plan_examples, plan_labelled
from router_core.labelled import OOS_LABEL, LabelledDataInvalid, LabelledQuery, parse_labelled
from router_core.review.guard import Baseline, Candidate, GuardReport, baseline, guard
from router_core.route_policy import RoutePolicy
from router_core.store import OpenIndex

Action = Literal["example", "eval"]
DEFAULT = "default"


@dataclass(frozen=True)
class Change:
    """A change as it would be saved: the edit, the guard's figures and the token to save it."""

    action: Action
    route: str
    ids: tuple[int, ...]
    edit: FileEdit
    guard: GuardReport | None
    token: str


@dataclass(frozen=True)
class Workspace:
    """Where a review's changes go and what they are checked against."""

    routes_dir: Path
    evals_dir: Path
    eval_file: str
    policy: RoutePolicy
    batch_size: int = 64


def eval_queries(evals_dir: Path) -> list[LabelledQuery]:
    """Every labelled query of the evals directory (files that do not parse are skipped)."""
    queries: list[LabelledQuery] = []
    for path in sorted(evals_dir.glob("*.jsonl")) if evals_dir.is_dir() else []:
        try:
            queries += parse_labelled(path.read_text(encoding="utf-8").splitlines(), where=path.name)
        except (OSError, UnicodeDecodeError, LabelledDataInvalid):
            continue
    return queries


def expected_route(rows: Sequence[StoredDecision]) -> str | None:
    """The route the rows' feedback names, if any does."""
    return next((r.feedback.expected for r in rows if r.feedback is not None and r.feedback.expected), None)


def plan_change(
    rows: Sequence[StoredDecision],
    action: Action,
    route: str | None,
    index: OpenIndex,
    embedder: Embedder,
    space: Workspace,
    *,
    evals: Baseline | None = None,
    others: Sequence[StoredDecision] = (),
) -> Change:
    """Plan adding the rows' texts as examples of `route` (default: the route their feedback
    names) or as held-out evaluation queries; EditRefused says why not. With `evals` (the
    evaluation files decided on `index`), an example change carries the guard's report over
    those and over the rows and `others` (open misroutes whose feedback names a route)."""
    table = index.table
    default = table.params.default_route
    chosen = route or expected_route(rows) or ""
    texts = [r.record.text for r in rows]
    if action == "example":
        held_out = {q.text for q in eval_queries(space.evals_dir)}
        leaked = [t for t in texts if " ".join(t.split()) in held_out]
        if leaked:
            raise EditRefused(f"{leaked[0]!r} is in an evaluation file: held-out queries are never examples")
        edit = plan_examples(space.routes_dir, chosen, texts, space.policy)
    else:
        examples = {e: r.name for r in table.routes for e in r.examples}
        known = [" ".join(t.split()) for t in texts if " ".join(t.split()) in examples]
        if known:
            raise EditRefused(
                f"{known[0]!r} is an example of route {examples[known[0]]!r}: evaluation queries are held out"
            )
        if chosen not in {r.name for r in table.routes} | {default, DEFAULT}:
            raise EditRefused(f"{chosen!r} is not a route; choose a route or {DEFAULT}")
        label = OOS_LABEL if chosen in (default, DEFAULT) else chosen
        edit = plan_labelled(space.evals_dir / space.eval_file, [(t, label) for t in texts])
    report = None
    if action == "example" and evals is not None:
        chosen_ids = {r.id for r in rows}
        reviewed = [LabelledQuery(t, chosen) for t in texts]
        reviewed += [
            LabelledQuery(r.record.text, r.feedback.expected)
            for r in others
            if r.id not in chosen_ids and r.feedback is not None and r.feedback.expected
        ]
        on_index = baseline(index, embedder, reviewed, batch_size=space.batch_size)
        report = guard(index, embedder, [Candidate(t, chosen) for t in edit.added], evals, on_index)
    token = hashlib.sha256(
        "\n".join([action, chosen, *map(str, sorted(r.id for r in rows)), edit.after]).encode()
    ).hexdigest()[:32]
    return Change(action, chosen, tuple(r.id for r in rows), edit, report, token)
