"""Labelled conversations: JSON Lines of `{"id", "messages": [{"role", "content", "route"?}]}`
(the format of ../shared/datasets/sgd_multiturn), each labelled turn routed with the history
before it and scored by kind of turn.

Pure (no file access): `python -m indexer eval` reads files, `POST /v1/evaluate` request bodies
and the evals directory, both through `parse_conversations`, and both score what the routing
pipeline decided with `turn_type_report`, so the two report the same figures for the same
file and index.

A user message with `route` is labelled (`oos` or the default route's name: it should fall
back); `domains` (a turn spanning several routes) and unlabelled messages are context only.
Turn types follow the data set's definitions: first of a domain (its route in no earlier user
turn, labelled or in `domains`), follow-up (any other labelled turn), switch (a route that
differs from the previous labelled turn's).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from router_core.conversation import Turn
from router_core.decision import Decision
from router_core.labelled import LabelledDataInvalid, check_text, is_fallback_label, read_json_line
from router_core.pipeline import RouteRequest
from router_core.routes import RouteTable

ROLES = ("user", "assistant", "system")
MISROUTED_CONTEXT = 5  # messages shown with a misrouted turn: up to 4 before it, then the turn


@dataclass(frozen=True)
class LabelledTurn:
    """A labelled user message: where it is and what kind of turn it is."""

    conversation: str
    position: int  # index in the conversation's messages
    route: str
    first_of_domain: bool
    switch: bool


@dataclass(frozen=True)
class LabelledConversation:
    """One conversation and its labelled user turns."""

    id: str
    messages: tuple[Turn, ...]
    labels: tuple[LabelledTurn, ...]

    def request(self, label: LabelledTurn) -> tuple[Turn, ...]:
        """The request the router sees for a labelled turn: the messages up to it."""
        return self.messages[: label.position + 1]


def holds_conversations(lines: Iterable[str]) -> bool:
    """True when the first non-blank line is an object with `messages` (a conversations file,
    not labelled queries). Reads no further than that line; a line that is not JSON is False
    (the parser then names it)."""
    for line in lines:
        if line.strip():
            try:
                row = read_json_line(line, "first line")
            except LabelledDataInvalid:
                return False
            return isinstance(row, dict) and "messages" in row
    return False


def parse_conversations(lines: Iterable[str], *, where: str, source: str | None = None) -> list[LabelledConversation]:
    """Labelled conversations from JSON Lines; raise LabelledDataInvalid naming the first bad
    line (`where` names the lines, `source` the whole input; see `labelled.parse_labelled`)."""
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        at = f"{where} line {number}"
        out.append(_conversation(read_json_line(line, at), at))
    if not out:
        raise LabelledDataInvalid(f"{source or where} holds no conversations")
    if not any(c.labels for c in out):
        raise LabelledDataInvalid(f"{source or where} holds no labelled user turn (a user message with a 'route')")
    return out


def _conversation(row: Any, where: str) -> LabelledConversation:
    if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
        raise LabelledDataInvalid(f"{where}: expected a JSON object with a 'messages' list")
    ident = str(row.get("id", where))
    turns: list[Turn] = []
    labels: list[LabelledTurn] = []
    seen: set[str] = set()
    previous: str | None = None
    for i, message in enumerate(row["messages"]):
        if not isinstance(message, dict):
            raise LabelledDataInvalid(f"{where}: messages[{i}] is not an object")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES or not isinstance(content, str):
            raise LabelledDataInvalid(f"{where}: messages[{i}] needs a role (user/assistant/system) and text content")
        check_text(content, where, f"messages[{i}].content")
        turns.append(Turn(i, role, " ".join(content.split())))
        route = message.get("route")
        domains = message.get("domains") or []
        if route is not None:
            if role != "user" or not isinstance(route, str) or not route.strip():
                raise LabelledDataInvalid(f"{where}: messages[{i}].route must be a route name on a user message")
            labels.append(LabelledTurn(ident, i, route, route not in seen, previous is not None and route != previous))
            previous = route
            seen.add(route)
        if isinstance(domains, list):
            seen.update(str(d) for d in domains)
    return LabelledConversation(ident, tuple(turns), tuple(labels))


def labelled_requests(
    conversations: Sequence[LabelledConversation],
) -> tuple[list[RouteRequest], list[LabelledTurn]]:
    """Every labelled turn as the request the router sees (the messages up to it), with its label."""
    pairs = [(c, label) for c in conversations for label in c.labels]
    return [RouteRequest(c.request(label)) for c, label in pairs], [label for _, label in pairs]


def last_message_alone(table: RouteTable) -> RouteTable:
    """The route set routing each request's last user message alone: the baseline every
    conversation report shows beside the rule."""
    return replace(table, conversation=replace(table.conversation, strategy="last_message"))


@dataclass(frozen=True)
class TurnTypeScores:
    """Accuracy on all labelled turns and on each kind of turn."""

    all: float
    first_of_domain: float
    follow_up: float
    switch: float
    counts: dict[str, int]

    @property
    def macro(self) -> float:
        """The mean of the four accuracies (calibration's objective)."""
        return (self.all + self.first_of_domain + self.follow_up + self.switch) / 4

    def as_row(self) -> dict[str, float]:
        """The four accuracies by name."""
        return {
            "all": self.all,
            "first of domain": self.first_of_domain,
            "follow-up": self.follow_up,
            "switch": self.switch,
        }


def score_turns(predicted: Sequence[str], labels: Sequence[LabelledTurn], default_route: str) -> TurnTypeScores:
    """Accuracy per turn type; `oos` (or the default route) labels are right when they fall back."""
    right = [
        p == (default_route if is_fallback_label(g.route, default_route) else g.route)
        for p, g in zip(predicted, labels, strict=True)
    ]
    groups = {
        "all": [True] * len(labels),
        "first of domain": [g.first_of_domain for g in labels],
        "follow-up": [not g.first_of_domain for g in labels],
        "switch": [g.switch for g in labels],
    }

    def acc(mask: list[bool]) -> float:
        n = sum(mask)
        return sum(r for r, m in zip(right, mask, strict=True) if m) / n if n else 0.0

    return TurnTypeScores(
        acc(groups["all"]),
        acc(groups["first of domain"]),
        acc(groups["follow-up"]),
        acc(groups["switch"]),
        {name: sum(mask) for name, mask in groups.items()},
    )


@dataclass(frozen=True)
class Misrouted:
    """A wrongly routed turn with the messages before it."""

    conversation: str
    position: int
    expected: str
    decided: str
    reason: str
    context: tuple[tuple[str, str], ...]  # (role, text) of up to 4 earlier messages, then the turn

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (`indexer eval --json`, `POST /v1/evaluate`)."""
        return {
            "conversation": self.conversation,
            "position": self.position,
            "expected": self.expected,
            "decided": self.decided,
            "reason": self.reason,
            "context": [{"role": r, "text": t} for r, t in self.context],
        }


def misrouted(
    requests: Sequence[RouteRequest],
    labels: Sequence[LabelledTurn],
    decisions: Sequence[Decision],
    default_route: str,
    limit: int | None = None,
) -> list[Misrouted]:
    """The wrongly routed turns (the first `limit` of them), with their context."""
    out = []
    for request, label, d in zip(requests, labels, decisions, strict=True):
        gold = default_route if is_fallback_label(label.route, default_route) else label.route
        if d.route != gold:
            shown = tuple((t.role, t.text) for t in request.turns[-MISROUTED_CONTEXT:])
            out.append(Misrouted(label.conversation, label.position, gold, d.route, d.reason, shown))
            if limit is not None and len(out) >= limit:
                break
    return out


@dataclass(frozen=True)
class TurnTypeReport:
    """What an evaluation of labelled conversations reports: accuracy by kind of turn for the
    router and for the last message alone, the decisions' reasons and the misrouted turns."""

    scores: TurnTypeScores
    last_message: TurnTypeScores
    reasons: dict[str, int]
    misrouted: list[Misrouted]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form shared by `indexer eval --json` and `POST /v1/evaluate`."""
        return {
            "scores": {**self.scores.as_row(), "counts": self.scores.counts},
            "last_message": self.last_message.as_row(),
            "reasons": dict(self.reasons),
            "misrouted": [m.to_dict() for m in self.misrouted],
        }


def turn_type_report(
    requests: Sequence[RouteRequest],
    labels: Sequence[LabelledTurn],
    decisions: Sequence[Decision],
    alone: Sequence[Decision],
    default_route: str,
) -> TurnTypeReport:
    """Score the router's `decisions` and the last message's `alone` for the labelled turns."""
    return TurnTypeReport(
        scores=score_turns([d.route for d in decisions], labels, default_route),
        last_message=score_turns([d.route for d in alone], labels, default_route),
        reasons=dict(Counter(d.reason for d in decisions).most_common()),
        misrouted=misrouted(requests, labels, decisions, default_route),
    )
