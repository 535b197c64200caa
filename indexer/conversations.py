"""Labelled conversations routed turn by turn for evaluation and calibration: the file reader,
and every labelled turn prepared once (texts embedded and searched) so that calibration can
score thousands of settings of the conversation rule.

The format, its parser and the scoring by kind of turn live in `router_core.labelled_conversations`
(the service evaluates conversation files with the same code); they are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from indexer.labelled import LabelledDataInvalid
from indexer.progress import NoSteps, Steps
from router_core import CannedAgent, Decision, Neighbour, OpenIndex, RouteTable, Turn, pipeline
from router_core.conversation import content_words, layout
from router_core.conversation_engine import ConversationBatch, Layout
from router_core.decision import decide_many
from router_core.embedding import Embedder, Vectors
from router_core.follow_ups import best_by_text
from router_core.labelled import split_lines
from router_core.labelled_conversations import (
    LabelledConversation,
    LabelledTurn,
    Misrouted,
    TurnTypeScores,
    holds_conversations,
    misrouted,
    parse_conversations,
    score_turns,
)
from router_core.mixing import Mix, mix_vectors
from router_core.neighbours import FloatArray
from router_core.params import ConversationParams, DecisionParams
from router_core.pipeline import Found, RouteRequest
from router_core.replies import ReplyBank, chance_by_text

__all__ = [
    "LabelledConversation",
    "LabelledTurn",
    "Misrouted",
    "Prepared",
    "TurnTypeScores",
    "is_conversation_file",
    "load_conversations",
    "misrouted",
    "prepare",
    "score_turns",
    "with_context",
]
_NO_AGENT = CannedAgent(name="none", reply="\x00")  # no route set: no reply the rule could recognise


def is_conversation_file(path: Path | str) -> bool:
    """True when the file's first record holds `messages` (a conversations file)."""
    try:
        with Path(path).open(encoding="utf-8") as fh:
            return holds_conversations(fh)
    except (OSError, UnicodeDecodeError):  # the loader then names the problem
        return False


def load_conversations(path: Path | str) -> list[LabelledConversation]:
    """Read a conversations file; raise LabelledDataInvalid naming the first bad line."""
    source = Path(path)
    try:
        lines = split_lines(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelledDataInvalid(f"cannot read {source}: {exc}") from exc
    return parse_conversations(lines, where=source.name, source=str(source))


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
    table: RouteTable | None = None  # the index version's route set (its routes: what the filter spreads over)
    # each routed message's best cosine to the route set's follow-ups, by text (empty: it has none)
    follow_up: Mapping[str, float] = field(default_factory=dict)
    # per request, its agent messages' chance of a new topic after them, by text (router_core.replies;
    # empty: none known). Calibration's are held out: each conversation meets the others' replies.
    reply_chance: tuple[Mapping[str, float], ...] = ()

    def decide(self, params: DecisionParams, conv: ConversationParams) -> list[Decision]:
        """Every labelled turn decided by the routing pipeline (what the service runs: the vote,
        then the conversation rule), under `params` and `conv`, from the prepared neighbours."""
        routes = self.table.routes if self.table is not None else ()
        agent = self.table.default_agent if self.table is not None else _NO_AGENT  # its reply is read
        table = RouteTable(name="prepared", routes=routes, default_agent=agent, params=params, conversation=conv)
        requests = [RouteRequest(turns) for turns in self.requests]
        if not self.reply_chance:
            found = Found(self.neighbours, self.vectors, self.mixed, self.follow_up)
            return pipeline.decide(requests, pipeline.plan(requests, table), found, table)
        # the requests that share their replies' chances (all, or one conversation's when held out)
        groups: dict[int, list[int]] = {}
        for i, chance in enumerate(self.reply_chance):
            groups.setdefault(id(chance), []).append(i)
        out: list[Decision | None] = [None] * len(requests)
        for rows in groups.values():
            part = [requests[i] for i in rows]
            found = Found(self.neighbours, self.vectors, self.mixed, self.follow_up, self.reply_chance[rows[0]])
            for i, d in zip(rows, pipeline.decide(part, pipeline.plan(part, table), found, table), strict=True):
                out[i] = d
        return [d for d in out if d is not None]

    def batch(
        self, params: DecisionParams, route_names: Sequence[str], follow_up: Sequence[float] | FloatArray | None = None
    ) -> ConversationBatch:
        """The arrays of the conversation engine for these requests; `follow_up`: each request's
        best cosine to follow-ups (calibration's held-out values), else `self.follow_up`'s."""
        if follow_up is None and self.follow_up:
            follow_up = [self.follow_up.get(lay.last.text, -np.inf) for lay in self.layouts]
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
            follow_up,
            self.reply_chance or None,
        )

    def with_follow_ups(self, bank: Vectors | None) -> Prepared:
        """The same turns against another set of follow-ups' vectors (None: none)."""
        return replace(self, follow_up=best_by_text([lay.last.text for lay in self.layouts], self.vectors, bank))

    def with_replies(self, bank: ReplyBank | None) -> Prepared:
        """The same turns against another set of replies (None: none)."""
        if bank is None or not len(bank):
            return replace(self, reply_chance=())
        texts = [lay.messages[j].text for lay in self.layouts for j in lay.read if lay.messages[j].role == "assistant"]
        chance = chance_by_text(texts, self.vectors, bank)
        return replace(self, reply_chance=tuple(chance for _ in self.layouts))


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
    # what the rule reads, as the pipeline does: without the exchanges the default agent answered
    read = [r.turns for r in pipeline.routable([RouteRequest(turns) for turns in requests], index.table)]
    layouts = tuple(layout(turns, max_window) for turns in read)
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
    prepared = Prepared(
        tuple(conversations),
        requests,
        tuple(label for _, label in pairs),
        layouts,
        neighbours,
        vectors,
        own,
        {m: seen[m] for m in mixes},
        index.table,
    )
    return prepared.with_follow_ups(index.follow_ups).with_replies(index.replies)


def with_context(conv: ConversationParams) -> bool:
    """Whether a setting reads contexts."""
    return bool(conv.context_weight)
