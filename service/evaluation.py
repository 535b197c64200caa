"""Evaluate labelled queries against the served index version, with the scoring of
`python -m indexer eval` (`router_core.evaluation`): the same neighbours, decisions, report and
threshold curve for the same file and index.

Labelled queries come in the request (JSON Lines text) or from a file of the evals directory
(`ROUTER_EVALS_DIR`), chosen by its exact name among the listed ones; like `routes/`, only
regular files inside the directory are listed and read, at most `max_file_bytes` each. A file of
labelled conversations (`{"id", "messages": [...]}` per line, as `python -m indexer eval`
reads them: `router_core.labelled_conversations`) is scored by kind of turn, every labelled turn
routed with the history before it through the routing pipeline, beside the last message alone:
the figures `indexer eval` prints for the same file and index. It is charged one query per text
the pipeline embeds for it (each distinct message it reads once; the contexts are mixed from
their vectors, `pipeline.plan`).

Evaluations share the CPU fairly: their queries are embedded and searched in passes of at most
64 queries and 16,000 characters on a worker thread of their own (`MicroBatcher`, the planner
of classify's passes), each pass giving the oldest evaluation one query and the rest to those
with the least work left, in slices with a pause after each (`YieldingEmbedder`) so classify
keeps answering. A caller (an API key, or an address without keys) runs one evaluation at a
time; others' evaluations run beside it instead of being refused. Every evaluation reads one
index version, leased for its whole duration; one whose client has gone stops after the pass
that is running.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from router_core import Neighbour, RouteRequest, RouteTable, pipeline
from router_core.embedding import Vectors
from router_core.evaluation import CURVE_THRESHOLDS, CurvePoint, EvalReport, evaluate, threshold_curve
from router_core.labelled import LabelledDataInvalid, LabelledQuery, canonical_labels, parse_labelled, split_lines
from router_core.labelled_conversations import (
    LabelledConversation,
    TurnTypeReport,
    holds_conversations,
    labelled_requests,
    last_message_alone,
    parse_conversations,
    turn_type_report,
)
from router_core.mixing import Mix, mix_vectors
from router_core.pipeline import Found, vote_only
from router_core.routes_dir import FileRefused, is_ignored, is_regular_inside, read_bounded
from service.errors import ServiceError
from service.live_index import IndexFollower, Served
from service.routing.batching import MicroBatcher
from service.yielding_embedder import YieldingEmbedder

SUFFIX = ".jsonl"
PASS_QUERIES = 64
PASS_CHARS = 16_000


class InvalidLabelled(ServiceError):
    """Labelled queries that cannot be read, or too many of them."""

    status = 400
    title = "Invalid labelled queries"


class EvalFileNotFound(ServiceError):
    """No such file in the evals directory."""

    status = 404
    title = "Evaluation file not found"


class EvaluationBusy(ServiceError):
    """The caller already has an evaluation running."""

    status = 409
    title = "Evaluation already running"


@dataclass(frozen=True)
class Labelled:
    """Labelled queries, or labelled conversations, read from a request or a file, and what
    they came from."""

    queries: list[LabelledQuery]
    source: str
    conversations: list[LabelledConversation] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Labelled queries, or labelled turns of the conversations."""
        return len(self.queries) + sum(len(c.labels) for c in self.conversations)


@dataclass(frozen=True)
class Evaluated:
    """An evaluation's report (labelled queries: with the threshold curve; conversations: by
    kind of turn) and what it was computed from."""

    source: str
    index_version: str
    model: str
    params: dict[str, Any]
    seconds: float
    report: EvalReport | None = None
    curve: list[CurvePoint] = field(default_factory=list)
    turns: TurnTypeReport | None = None


@dataclass(frozen=True, eq=False)
class _Query:
    """One text of an evaluation, with the leased version it is searched in."""

    served: Served
    text: str
    vector: Vectors | None = None  # a mix of texts' vectors (a conversation's context): searched only


@dataclass(frozen=True)
class _Hit:
    """A text's nearest examples and its vector (the conversation rule reads both)."""

    neighbours: Sequence[Neighbour]
    vector: Vectors


class Evaluator:
    """Evaluates labelled queries against the followed index version."""

    def __init__(
        self,
        follower: IndexFollower,
        evals_dir: Path,
        *,
        batch_size: int,
        max_queries: int,
        max_file_bytes: int = 10_000_000,
    ) -> None:
        self._follower = follower
        self._evals_dir = evals_dir
        self._batch_size = batch_size
        self.max_queries = max_queries
        self._max_file_bytes = max_file_bytes
        self._running: set[str] = set()
        self._batcher: MicroBatcher[_Query, _Hit] = MicroBatcher(
            self._search, PASS_QUERIES, cost=lambda q: len(q.text) if q.vector is None else 1, max_cost=PASS_CHARS
        )
        self._started = False

    async def stop(self) -> None:
        """Stop the worker thread (if an evaluation ever started it)."""
        if self._started:
            await self._batcher.stop()

    # -- reading ---------------------------------------------------------------------------------
    def files(self) -> list[str]:
        """The JSON Lines files of the evals directory, by name: regular files inside it, not
        hidden files or editor leftovers (none when the directory does not exist)."""
        root = self._evals_dir
        if not root.is_dir():
            return []
        return sorted(
            p.name
            for p in root.iterdir()
            if p.suffix == SUFFIX and not is_ignored(p.name) and is_regular_inside(root, p)
        )

    def read(self, *, jsonl: str | None, file: str | None) -> Labelled:
        """The posted lines or the named file (labelled queries or labelled conversations),
        parsed and counted (blocking: call off the loop)."""
        if (jsonl is None) == (file is None):
            raise InvalidLabelled("send exactly one of jsonl or file", field="jsonl")
        source = file if file is not None else "posted lines"
        lines = split_lines(self._read(file) if file is not None else jsonl or "")
        try:
            if holds_conversations(lines):
                labelled = Labelled([], source, parse_conversations(lines, where=source))
            else:
                labelled = Labelled(parse_labelled(lines, where=source), source)
        except LabelledDataInvalid as exc:
            raise InvalidLabelled(str(exc), field="file" if file is not None else "jsonl") from exc
        if labelled.count > self.max_queries:
            what = "labelled turns" if labelled.conversations else "labelled queries"
            raise InvalidLabelled(
                f"{labelled.count} {what}; the limit is {self.max_queries}",
                field="jsonl",
                limit=self.max_queries,
            )
        return labelled

    def cost(self, labelled: Labelled) -> int:
        """Queries the rate limit charges: one per labelled query, or one per text the pipeline
        embeds for the conversations' labelled turns (blocking: call off the loop)."""
        if not labelled.conversations:
            return len(labelled.queries)
        return max(1, len(self._chat_queries(self._follower.served.index.table, labelled)[0]))

    @staticmethod
    def _chat_queries(table: RouteTable, labelled: Labelled) -> tuple[list[str], list[Mix]]:
        """Every text the rule and the last message alone read for the labelled turns, and
        the contexts the rule searches (mixes of those texts' vectors)."""
        requests, _ = labelled_requests(labelled.conversations)
        table = vote_only(table)
        planned = [pipeline.plan(requests, t) for t in (table, last_message_alone(table))]
        texts = list(dict.fromkeys(text for p in planned for text in p.texts))
        return texts, list(dict.fromkeys(mix for p in planned for mix in p.mixes))

    def _read(self, name: str) -> str:
        if name not in self.files():  # only a listed name: never a path the caller made up
            raise EvalFileNotFound(f"no evaluation file named {name!r}; choose one of the listed files", file=name)
        try:
            return read_bounded(
                self._evals_dir,
                self._evals_dir / name,
                self._max_file_bytes,
                directory="the evals directory",
                limit_name="ROUTER_LIMITS__MAX_EVAL_FILE_BYTES",
            )
        except FileRefused as exc:
            raise InvalidLabelled(f"{name}: {exc}", file=name) from exc

    # -- scoring ---------------------------------------------------------------------------------
    async def evaluate(self, labelled: Labelled, *, caller: str) -> Evaluated:
        """Score the queries on the served version; 409 while `caller` has another running."""
        if caller in self._running:
            raise EvaluationBusy(
                "an evaluation of yours is already running; try again when it finishes "
                "(evaluations of other callers run beside it)"
            )
        if not self._started:
            self._batcher.start()
            self._started = True
        self._running.add(caller)
        started = time.perf_counter()
        try:
            with self._follower.lease() as served:
                if labelled.conversations:
                    found = await self._find_chats(served, labelled)
                    return await asyncio.to_thread(self._score_chats, served, labelled, found, started)
                hits = await self._batcher.submit([_Query(served, q.text) for q in labelled.queries])
                neighbours = [h.neighbours for h in hits]
                return await asyncio.to_thread(self._score, served, labelled, neighbours, started)
        finally:
            self._running.discard(caller)

    async def _find_chats(self, served: Served, labelled: Labelled) -> Found:
        """The texts' neighbours and vectors, then the contexts' neighbours (their vectors mixed
        from the texts'), each searched through the evaluation worker as serving does."""
        texts, mixes = await asyncio.to_thread(self._chat_queries, served.index.table, labelled)
        hits = await self._batcher.submit([_Query(served, t) for t in texts])
        vectors = {t: h.vector for t, h in zip(texts, hits, strict=True)}
        rows = await asyncio.to_thread(mix_vectors, mixes, vectors, served.embedder.dimension)
        mixed = await self._batcher.submit([_Query(served, "", row) for row in rows]) if mixes else []
        return Found(
            {t: h.neighbours for t, h in zip(texts, hits, strict=True)},
            vectors,
            {m: h.neighbours for m, h in zip(mixes, mixed, strict=True)},
        )

    def _search(self, queries: list[_Query]) -> list[_Hit]:
        """One pass, on the evaluation worker: each query's k nearest examples in its version,
        and its vector (a text's embedded here, a mix's as given)."""
        out: list[_Hit | None] = [None] * len(queries)
        by_version: defaultdict[int, list[int]] = defaultdict(list)
        for i, q in enumerate(queries):
            by_version[id(q.served)].append(i)
        for positions in by_version.values():
            served = queries[positions[0]].served
            embedder = YieldingEmbedder(served.embedder)
            rows: dict[int, Vectors] = {i: v for i in positions if (v := queries[i].vector) is not None}
            to_embed = [i for i in positions if i not in rows]
            if to_embed:
                encoded = embedder.encode_queries([queries[i].text for i in to_embed], batch_size=self._batch_size)
                rows.update(zip(to_embed, encoded, strict=True))
            vectors = np.stack([rows[i] for i in positions]).astype(np.float32, copy=False)
            found = served.index.searcher.search(vectors, served.index.table.params.k)
            for i, hits, vector in zip(positions, found, vectors, strict=True):
                out[i] = _Hit(hits, vector)
        return [hit for hit in out if hit is not None]

    @staticmethod
    def _score(
        served: Served, labelled: Labelled, neighbours: Sequence[Sequence[Neighbour]], started: float
    ) -> Evaluated:
        """What `python -m indexer eval` computes from these neighbours, on the leased version."""
        index = served.index
        params = index.table.params
        names = [r.name for r in index.table.routes]
        texts = [q.text for q in labelled.queries]
        labels = canonical_labels(labelled.queries, set(names), params.default_route)
        # The routing pipeline, as `indexer eval` runs it (the vote, before any decision model).
        table = vote_only(index.table)
        requests = [RouteRequest.query(t) for t in texts]
        found = Found(dict(zip(texts, neighbours, strict=True)))
        decisions = pipeline.decide(requests, pipeline.plan(requests, table), found, table)
        report = evaluate(decisions, labels, params.default_route, texts=texts, routes=names)
        curve = threshold_curve(neighbours, labels, params, CURVE_THRESHOLDS, names)
        return Evaluated(
            source=labelled.source,
            index_version=index.version,
            model=index.manifest.model_id,
            params=params.to_dict(),
            seconds=time.perf_counter() - started,
            report=report,
            curve=curve,
        )

    @staticmethod
    def _score_chats(served: Served, labelled: Labelled, found: Found, started: float) -> Evaluated:
        """What `python -m indexer eval` computes for a conversations file, on the leased version:
        the routing pipeline (the vote, then the conversation rule; before any decision model)
        and the last message alone, scored by kind of turn."""
        index = served.index
        table = vote_only(index.table)
        alone = last_message_alone(table)
        requests, labels = labelled_requests(labelled.conversations)
        planned = pipeline.plan(requests, table)
        found = replace(
            found,
            follow_up=pipeline.follow_up_of(planned, found.vectors, index.follow_ups),
            reply_chance=pipeline.reply_chance_of(planned, found.vectors, index.replies),
        )
        decisions = pipeline.decide(requests, planned, found, table)
        baseline = pipeline.decide(requests, pipeline.plan(requests, alone), found, alone)
        return Evaluated(
            source=labelled.source,
            index_version=index.version,
            model=index.manifest.model_id,
            params={**table.params.to_dict(), "conversation": table.conversation.to_dict()},
            seconds=time.perf_counter() - started,
            turns=turn_type_report(requests, labels, decisions, baseline, table.params.default_route),
        )
