"""Evaluate labelled queries against the served index version, with the scoring of
`python -m indexer eval` (`router_core.evaluation`): the same neighbours, decisions, report and
threshold curve for the same file and index.

Labelled queries come in the request (JSON Lines text) or from a file of the evals directory
(`ROUTER_EVALS_DIR`), chosen by its exact name among the listed ones; like `routes/`, only
regular files inside the directory are listed and read, at most `max_file_bytes` each.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router_core import Neighbour, RouteRequest, pipeline
from router_core.evaluation import CURVE_THRESHOLDS, CurvePoint, EvalReport, evaluate, threshold_curve
from router_core.labelled import LabelledDataInvalid, LabelledQuery, canonical_labels, parse_labelled, split_lines
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
    """Labelled queries read from a request or a file, and what they came from."""

    queries: list[LabelledQuery]
    source: str


@dataclass(frozen=True)
class Evaluated:
    """An evaluation's report, its threshold curve and what it was computed from."""

    source: str
    index_version: str
    model: str
    params: dict[str, Any]
    report: EvalReport
    curve: list[CurvePoint]
    seconds: float


@dataclass(frozen=True, eq=False)
class _Query:
    """One query of an evaluation, with the leased version it is searched in."""

    served: Served
    text: str


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
        self._batcher: MicroBatcher[_Query, Sequence[Neighbour]] = MicroBatcher(
            self._search, PASS_QUERIES, cost=lambda q: len(q.text), max_cost=PASS_CHARS
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
        """The posted lines or the named file, parsed and counted (blocking: call off the loop)."""
        if (jsonl is None) == (file is None):
            raise InvalidLabelled("send exactly one of jsonl or file", field="jsonl")
        source = file if file is not None else "posted lines"
        text = self._read(file) if file is not None else jsonl or ""
        try:
            queries = parse_labelled(split_lines(text), where=source)
        except LabelledDataInvalid as exc:
            raise InvalidLabelled(str(exc), field="file" if file is not None else "jsonl") from exc
        if len(queries) > self.max_queries:
            raise InvalidLabelled(
                f"{len(queries)} labelled queries; the limit is {self.max_queries}",
                field="jsonl",
                limit=self.max_queries,
            )
        return Labelled(queries, source)

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
                neighbours = await self._batcher.submit([_Query(served, q.text) for q in labelled.queries])
                return await asyncio.to_thread(self._score, served, labelled, neighbours, started)
        finally:
            self._running.discard(caller)

    def _search(self, queries: list[_Query]) -> list[Sequence[Neighbour]]:
        """One pass, on the evaluation worker: each query's k nearest examples in its version."""
        out: list[Sequence[Neighbour] | None] = [None] * len(queries)
        by_version: defaultdict[int, list[int]] = defaultdict(list)
        for i, q in enumerate(queries):
            by_version[id(q.served)].append(i)
        for positions in by_version.values():
            served = queries[positions[0]].served
            embedder = YieldingEmbedder(served.embedder)
            vectors = embedder.encode_queries([queries[i].text for i in positions], batch_size=self._batch_size)
            found = served.index.searcher.search(vectors, served.index.table.params.k)
            for i, hits in zip(positions, found, strict=True):
                out[i] = hits
        return [hits for hits in out if hits is not None]

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
            report=report,
            curve=curve,
            seconds=time.perf_counter() - started,
        )
