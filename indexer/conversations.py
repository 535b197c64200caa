"""Labelled conversations: JSON Lines of `{"id", "messages": [{"role", "content", "route"?}]}`
(the format of ../shared/datasets/sgd_multiturn), routed turn by turn and scored.

A user message with `route` is labelled (`oos` or the default route's name: it should fall
back); `domains` (a turn spanning several routes) and unlabelled messages are context only.
Turn types follow the data set's definitions: first of a domain (its route in no earlier user
turn, labelled or in `domains`), follow-up (any other labelled turn), switch (a route that
differs from the previous labelled turn's).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer.labelled import LabelledDataInvalid, is_fallback_label
from indexer.progress import NoSteps, Steps
from router_core import CannedAgent, Decision, Neighbour, OpenIndex, RouteTable, Turn, pipeline
from router_core.conversation import content_words, layout
from router_core.conversation_engine import ConversationBatch, Layout
from router_core.decision import decide_many
from router_core.embedding import Embedder
from router_core.labelled import check_text, read_json_line, split_lines
from router_core.mixing import Mix, mix_vectors
from router_core.params import ConversationParams, DecisionParams
from router_core.pipeline import Found, RouteRequest

_ROLES = {"user", "assistant", "system"}
EXAMPLES_PER_TYPE = 20
_NO_AGENT = CannedAgent(name="none", reply="-")  # the pipeline's decisions read no agent


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


def is_conversation_file(path: Path | str) -> bool:
    """True when the file's first record holds `messages` (a conversations file)."""
    try:
        with Path(path).open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    row = json.loads(line)
                    return isinstance(row, dict) and "messages" in row
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):  # the loader then names the line
        return False
    return False


def load_conversations(path: Path | str) -> list[LabelledConversation]:
    """Read a conversations file; raise LabelledDataInvalid naming the first bad line."""
    source = Path(path)
    try:
        lines = split_lines(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelledDataInvalid(f"cannot read {source}: {exc}") from exc
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source.name} line {number}"
        out.append(_conversation(read_json_line(line, where), where))
    if not out:
        raise LabelledDataInvalid(f"{source} holds no conversations")
    if not any(c.labels for c in out):
        raise LabelledDataInvalid(f"{source} holds no labelled user turn (a user message with a 'route')")
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
        if role not in _ROLES or not isinstance(content, str):
            raise LabelledDataInvalid(f"{where}: messages[{i}] needs a role (user/assistant/system) and text content")
        check_text(content, where, f"messages[{i}].content")
        text = " ".join(content.split())
        turns.append(Turn(i, role, text))
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


@dataclass(frozen=True)
class Prepared:
    """Every labelled turn of a file as a request, with what the rule reads already computed:
    the neighbours and vectors of every text, and each last message's own decision."""

    conversations: tuple[LabelledConversation, ...]
    requests: tuple[tuple[Turn, ...], ...]
    labels: tuple[LabelledTurn, ...]
    layouts: tuple[Layout, ...]
    neighbours: dict[str, list[Neighbour]]
    vectors: dict[str, Any]
    own: tuple[Decision, ...]
    mixed: dict[Mix, list[Neighbour]] = field(default_factory=dict)  # the contexts' neighbours

    def decide(self, params: DecisionParams, conv: ConversationParams) -> list[Decision]:
        """Every labelled turn decided by the routing pipeline (what the service runs: the vote,
        then the conversation rule), under `params` and `conv`, from the prepared neighbours."""
        table = RouteTable(name="prepared", routes=(), default_agent=_NO_AGENT, params=params, conversation=conv)
        requests = [RouteRequest(turns) for turns in self.requests]
        found = Found(self.neighbours, self.vectors, self.mixed)
        return pipeline.decide(requests, pipeline.plan(requests, table), found, table)

    def batch(self, params: DecisionParams, route_names: Sequence[str]) -> ConversationBatch:
        """The arrays of the conversation engine for these requests."""
        return ConversationBatch.build(
            self.layouts,
            self.neighbours,
            self.vectors,
            [(None if d.fallback else d.route, d.score) for d in self.own],
            route_names,
            params.k,
            [content_words(lay.last.text) for lay in self.layouts],
            [params.threshold_for(name) for name in route_names],
            self.mixed,
        )


def prepare(
    conversations: Sequence[LabelledConversation],
    embedder: Embedder,
    index: OpenIndex,
    params: DecisionParams,
    *,
    max_window: int,
    with_context: bool,
    batch_size: int = 64,
    progress: Steps | None = None,
    chunk: int = 2048,
    known: dict[Any, Any] | None = None,
) -> Prepared:
    """Embed every text the rule may read (each distinct text once, in big batches) and search
    its neighbours, `chunk` texts at a time so that `progress` hears how far it got; with
    `with_context`, search the contexts too (mixes of those vectors, as the service does).
    `known` (text -> vector and neighbours, mix -> neighbours) is read and filled: files
    prepared with one `known` (a conversations file and its off-topic insertions) never embed a
    text twice."""
    pairs = [(c, label) for c in conversations for label in c.labels]
    requests = tuple(c.request(label) for c, label in pairs)
    layouts = tuple(layout(turns, max_window) for turns in requests)
    texts = list(dict.fromkeys(t for lay in layouts for t in lay.texts()))
    mixes = list(dict.fromkeys(m for lay in layouts for m in lay.contexts())) if with_context else []
    seen = known if known is not None else {}
    fresh = [t for t in texts if t not in seen]
    steps = progress or NoSteps()
    steps.stage(f"embedding and searching {len(fresh)} texts of the conversations", len(fresh))
    for start in range(0, len(fresh), chunk):
        part = fresh[start : start + chunk]
        encoded = embedder.encode_queries(part, batch_size=batch_size)
        for text, vector, hits in zip(part, encoded, index.searcher.search(encoded, params.k), strict=True):
            seen[text] = (vector, hits)
        steps.advance(len(part))
    vectors = {t: seen[t][0] for t in texts}
    fresh_mixes = [m for m in mixes if m not in seen]
    for start in range(0, len(fresh_mixes), chunk):
        part_mixes = fresh_mixes[start : start + chunk]
        rows = mix_vectors(part_mixes, vectors, embedder.dimension)
        seen.update(zip(part_mixes, index.searcher.search(rows, params.k), strict=True))
    neighbours = {t: seen[t][1] for t in texts}
    own = tuple(decide_many([neighbours[lay.last.text] for lay in layouts], params))
    return Prepared(
        tuple(conversations),
        requests,
        tuple(label for _, label in pairs),
        layouts,
        neighbours,
        vectors,
        own,
        {m: seen[m] for m in mixes},
    )


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
            shown = tuple((t.role, t.text) for t in request.turns[-5:])
            out.append(Misrouted(label.conversation, label.position, gold, d.route, d.reason, shown))
            if limit is not None and len(out) >= limit:
                break
    return out


def with_context(conv: ConversationParams) -> bool:
    """Whether a setting reads contexts."""
    return bool(conv.context_weight)
