"""The routing pipeline, composed once: what the service serves is what evaluation measures.

Every caller (the service's routing stage, `python -m indexer eval` and `calibrate`,
`POST /v1/evaluate`, the benchmarks) routes a batch of requests through these steps, in this
order, and does only the I/O around them:

1. `plan(requests, table)`: the texts the batch needs embedded and searched (k nearest
   examples each): each request's routed message and, for a conversation, the messages of
   its window (without the exchanges the route set's canned default agent answered:
   `routable`); and the queries derived from them (`Plan.mixes`: each user message's
   context, a mix of its messages' vectors). Mode `llm` needs none.
2. the caller embeds the texts, turns the plan into the rows to search with
   `search_vectors` (the texts' vectors, then the mixes'), searches them all in one batch
   and hands the hits back through `found` (`Found`: neighbours by text and by mix, vectors
   by text); `route_with` runs steps 1-3 given a function that does that. So the work of a
   conversation is one embedding per message of its window and one search, whatever its
   history.
3. `decide(requests, plan, found, table)`: the vote over the routed message's neighbours
   (`router_core.decision`), then the conversation rule over the history
   (`router_core.conversation`). Mode `llm`: a pending decision (the default route, reason
   `llm_failed`) until the model answers.
4. `question(request, decision, table)`: what to ask the decision model (None: nothing); the
   caller asks (`router_llm.decider`), remembering answers as it likes.
5. `settle(decision, choice, table)`: the decision once the model answered (None: the call
   failed).

This module is the one place where the route set's mode is branched on. Pure: no model, no
index, no LLM client.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from router_core.agents import CannedAgent
from router_core.conversation import (
    Turn,
    agent_texts_needed,
    contexts_needed,
    last_user_text,
    route_conversations,
    texts_needed,
    without_default_exchanges,
)
from router_core.decision import Decision, decide_many
from router_core.follow_ups import best_by_text
from router_core.llm_routing import (
    Question,
    RouteChoice,
    agrees,
    allowed_routes,
    apply_choice,
    ask_about,
    candidates,
    escalates,
    llm_only,
)
from router_core.mixing import Mix, mix_vectors
from router_core.neighbours import Neighbour
from router_core.replies import ReplyBank, chance_by_text
from router_core.routes import RouteTable

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True)
class RouteRequest:
    """What to route: a conversation's user and assistant messages (a query is one user message)."""

    turns: tuple[Turn, ...]

    @classmethod
    def query(cls, text: str) -> RouteRequest:
        """One user message."""
        return cls((Turn(0, "user", text),))

    @property
    def text(self) -> str:
        """The message being routed (the last user message)."""
        return last_user_text(self.turns)

    @property
    def is_conversation(self) -> bool:
        """More than one user or assistant message: the conversation rule takes part."""
        return sum(t.role in ("user", "assistant") for t in self.turns) > 1

    def chat(self) -> list[tuple[str, str]]:
        """(role, text) of its user and assistant messages, the routed message last."""
        return [(t.role, t.text) for t in self.turns if t.role in ("user", "assistant")]


@dataclass(frozen=True)
class Plan:
    """The texts a batch of requests needs embedded and searched, and the mixes of their
    vectors it needs searched."""

    texts: tuple[str, ...]  # distinct, in order of first use
    k: int  # nearest examples per text
    per_request: tuple[tuple[str, ...], ...]  # each request's texts, its routed message first
    history: frozenset[str] = frozenset()  # texts of conversations: a live chat sends them again
    mixes: tuple[Mix, ...] = ()  # distinct; conversations' contexts, mixes of `texts`' vectors
    agents: tuple[str, ...] = ()  # distinct; the agent messages among `texts` (router_core.replies)

    @property
    def queries(self) -> tuple[str | Mix, ...]:
        """What is searched, in the order of `search_vectors`' rows: the texts, then the mixes."""
        return (*self.texts, *self.mixes)


@dataclass(frozen=True)
class Found:
    """What the caller found for a plan: the nearest examples of its texts and of its mixes,
    the texts' vectors, the routed messages' best cosine to the route set's follow-ups
    (`follow_up`, by text; empty when the set has none) and the conversations' messages'
    chance that a new topic follows them, from the route set's replies (`reply_chance`, by
    text; empty when the set has none: router_core.replies)."""

    neighbours: Mapping[str, Sequence[Neighbour]]
    vectors: Mapping[str, Vector] = field(default_factory=dict)
    mixed: Mapping[Mix, Sequence[Neighbour]] = field(default_factory=dict)
    follow_up: Mapping[str, float] = field(default_factory=dict)
    reply_chance: Mapping[str, float] = field(default_factory=dict)


def routable(requests: Sequence[RouteRequest], table: RouteTable) -> list[RouteRequest]:
    """What the rule reads of each request: a conversation without the exchanges the route
    set's canned default agent answered (`without_default_exchanges`: an off-topic request and
    the default reply are not the conversation's topic)."""
    agent = table.default_agent
    reply = agent.reply if isinstance(agent, CannedAgent) else None
    if reply is None:
        return list(requests)
    return [RouteRequest(without_default_exchanges(r.turns, reply)) if r.is_conversation else r for r in requests]


def plan(requests: Sequence[RouteRequest], table: RouteTable) -> Plan:
    """The texts `decide` reads for `requests` under the route set's mode and parameters."""
    if table.mode == "llm":  # the decision model decides; nothing to embed
        return Plan((), table.params.k, tuple(() for _ in requests))
    requests = routable(requests, table)
    per_request = tuple(texts_needed(r.turns, table.conversation) if r.is_conversation else (r.text,) for r in requests)
    history = frozenset(t for r, texts in zip(requests, per_request, strict=True) if r.is_conversation for t in texts)
    texts = tuple(dict.fromkeys(t for texts in per_request for t in texts))
    conv = table.conversation
    mixes = tuple(dict.fromkeys(m for r in requests if r.is_conversation for m in contexts_needed(r.turns, conv)))
    agents = tuple(dict.fromkeys(t for r in requests if r.is_conversation for t in agent_texts_needed(r.turns, conv)))
    return Plan(texts, table.params.k, per_request, history, mixes, agents)


def search_vectors(planned: Plan, vectors: Mapping[str, Vector], dimension: int) -> npt.NDArray[np.float32]:
    """The rows to search for `planned`, one per query of `planned.queries`: each text's vector
    (`vectors`, by text), then each mix's, derived from them. Search them in one batch."""
    rows = np.zeros((len(planned.texts), dimension), dtype=np.float32)
    for i, text in enumerate(planned.texts):
        rows[i] = vectors[text]
    return np.concatenate([rows, mix_vectors(planned.mixes, vectors, dimension)])


def found_from(
    planned: Plan,
    vectors: Mapping[str, Vector],
    hits: Sequence[Sequence[Neighbour]],
    follow_ups: npt.NDArray[np.float32] | None = None,
    replies: ReplyBank | None = None,
) -> Found:
    """What `decide` reads: `hits` holds the nearest examples of `search_vectors`' rows, in
    order; `follow_ups` the route set's follow-ups' vectors (None or empty: it has none);
    `replies` its replies (None: it has none)."""
    if len(hits) != len(planned.texts) + len(planned.mixes):
        raise ValueError(f"{len(hits)} search results for {len(planned.texts) + len(planned.mixes)} queries")
    n = len(planned.texts)
    return Found(
        dict(zip(planned.texts, hits[:n], strict=True)),
        {t: vectors[t] for t in planned.texts},
        dict(zip(planned.mixes, hits[n:], strict=True)),
        follow_up_of(planned, vectors, follow_ups),
        reply_chance_of(planned, vectors, replies),
    )


def follow_up_of(
    planned: Plan, vectors: Mapping[str, Vector], follow_ups: npt.NDArray[np.float32] | None
) -> dict[str, float]:
    """The best cosine of each conversation's routed message to the follow-ups (step 2 of the
    conversation rule reads it); empty without follow-ups."""
    routed = [texts[0] for texts in planned.per_request if texts and texts[0] in planned.history]
    return best_by_text(routed, vectors, follow_ups)


def reply_chance_of(planned: Plan, vectors: Mapping[str, Vector], replies: ReplyBank | None) -> dict[str, float]:
    """The chance of a new topic after each agent message of the conversations' windows (step 3
    of the conversation rule reads them); empty without replies."""
    return chance_by_text(planned.agents, vectors, replies)


def decide(requests: Sequence[RouteRequest], planned: Plan, found: Found, table: RouteTable) -> list[Decision]:
    """The vote for every request, then the conversation rule for conversations; in mode
    `llm`, the pending decision that `settle` replaces with the model's choice."""
    if table.mode == "llm":
        return [llm_only(None, table.params.default_route) for _ in requests]
    requests = routable(requests, table)
    own = decide_many([found.neighbours[texts[0]] for texts in planned.per_request], table.params)
    decisions = list(own)
    chats = [i for i, r in enumerate(requests) if r.is_conversation]
    if chats:
        routed = route_conversations(
            [requests[i].turns for i in chats],
            found.neighbours,
            found.vectors,
            [own[i] for i in chats],
            table.params,
            table.conversation,
            found.mixed,
            # every route of the set (as calibration builds its batches), never the batch's own:
            # a conversation is decided alike alone and in any micro-batch
            [r.name for r in table.routes] if table.routes else None,
            found.follow_up or None,
            found.reply_chance or None,
        )
        for i, d in zip(chats, routed, strict=True):
            decisions[i] = d
    return decisions


def vote_only(table: RouteTable) -> RouteTable:
    """The route set decided without its decision model (mode embedding): what an evaluation
    without the LLM step scores, and the decisions the LLM step starts from offline."""
    return replace(table, mode="embedding")


def route_with(
    requests: Sequence[RouteRequest], table: RouteTable, search: Callable[[Plan], Found]
) -> tuple[list[Decision], Plan]:
    """Steps 1-3: plan, let `search` embed and search the plan's texts, decide."""
    planned = plan(requests, table)
    found = search(planned) if planned.texts else Found({})
    return decide(requests, planned, found, table), planned


def question(request: RouteRequest, decision: Decision, table: RouteTable) -> Question | None:
    """What the route set's mode asks the decision model about this request (None: nothing;
    the decision stands)."""
    if table.mode == "embedding":
        return None
    if table.mode == "hybrid":
        if not escalates(decision, table.params, table.llm):
            return None
        return ask_about(table, candidates(decision, table.llm), request.chat())
    return ask_about(table, allowed_routes(table), request.chat())


def settle(decision: Decision, choice: RouteChoice | None, table: RouteTable) -> Decision:
    """The decision once the model answered `choice` (None: the call failed or timed out):
    mode llm takes the answer or the default route; hybrid takes a recognised answer and keeps
    the vote otherwise."""
    default = table.params.default_route
    if table.mode == "llm":
        return llm_only(choice, default)
    return decision if choice is None else apply_choice(decision, choice, default)


def agreement(decision: Decision, choice: RouteChoice | None, table: RouteTable) -> bool | None:
    """Hybrid only: whether a recognised answer named the vote's own route (None otherwise)."""
    if table.mode != "hybrid" or choice is None or not choice.recognised:
        return None
    return agrees(decision, choice, table.params.default_route)
