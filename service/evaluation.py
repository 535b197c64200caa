"""Evaluate labelled queries against the served index version, with the scoring of
`python -m indexer eval` (`router_core.evaluation`): the same neighbours, decisions, report and
threshold curve for the same file and index.

Labelled queries come in the request (JSON Lines text) or from a file of the evals directory
(`ROUTER_EVALS_DIR`), chosen by its exact name among the listed ones. One evaluation runs at
a time, on a worker thread.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router_core.decision import decide_many
from router_core.evaluation import CURVE_THRESHOLDS, CurvePoint, EvalReport, evaluate, threshold_curve
from router_core.labelled import LabelledDataInvalid, LabelledQuery, canonical_labels, parse_labelled
from service.errors import ServiceError
from service.live_index import IndexFollower


class InvalidLabelled(ServiceError):
    """Labelled queries that cannot be read, or too many of them."""

    status = 400
    title = "Invalid labelled queries"


class EvalFileNotFound(ServiceError):
    """No such file in the evals directory."""

    status = 404
    title = "Evaluation file not found"


class EvaluationBusy(ServiceError):
    """An evaluation is already running."""

    status = 409
    title = "Evaluation already running"


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


class Evaluator:
    """Evaluates labelled queries against the followed index version."""

    def __init__(self, follower: IndexFollower, evals_dir: Path, *, batch_size: int, max_queries: int) -> None:
        self._follower = follower
        self._evals_dir = evals_dir
        self._batch_size = batch_size
        self.max_queries = max_queries
        self._lock = asyncio.Lock()

    def files(self) -> list[str]:
        """The JSON Lines files of the evals directory, by name (none when it does not exist)."""
        if not self._evals_dir.is_dir():
            return []
        return sorted(p.name for p in self._evals_dir.glob("*.jsonl") if p.is_file())

    def _read(self, name: str) -> str:
        if name not in self.files():  # only a listed name: never a path the caller made up
            raise EvalFileNotFound(f"no evaluation file named {name!r}; choose one of the listed files", file=name)
        try:
            return (self._evals_dir / name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidLabelled(f"cannot read {name}: {type(exc).__name__}", file=name) from exc

    async def evaluate(self, *, jsonl: str | None, file: str | None) -> Evaluated:
        """Evaluate the posted lines or the named file; one evaluation at a time."""
        if (jsonl is None) == (file is None):
            raise InvalidLabelled("send exactly one of jsonl or file", field="jsonl")
        if self._lock.locked():
            raise EvaluationBusy("an evaluation is already running; try again when it finishes")
        async with self._lock:
            return await asyncio.get_running_loop().run_in_executor(None, self._evaluate, jsonl, file)

    def _evaluate(self, jsonl: str | None, file: str | None) -> Evaluated:
        started = time.perf_counter()
        source = file if file is not None else "posted lines"
        text = self._read(file) if file is not None else jsonl or ""
        try:
            queries = parse_labelled(text.splitlines(), where=source)
        except LabelledDataInvalid as exc:
            raise InvalidLabelled(str(exc), field="file" if file is not None else "jsonl") from exc
        if len(queries) > self.max_queries:
            raise InvalidLabelled(
                f"{len(queries)} labelled queries; the limit is {self.max_queries}",
                field="jsonl",
                limit=self.max_queries,
            )
        return self._score(queries, source, started)

    def _score(self, queries: list[LabelledQuery], source: str, started: float) -> Evaluated:
        """What `python -m indexer eval` computes, on the served version and its model."""
        with self._follower.lease() as served:
            index, embedder = served.index, served.embedder
            params = index.table.params
            names = [r.name for r in index.table.routes]
            texts = [q.text for q in queries]
            labels = canonical_labels(queries, set(names), params.default_route)
            # Embed once, search once: what `indexer eval`'s neighbours_for does without progress.
            neighbours = index.searcher.search(embedder.encode_queries(texts, batch_size=self._batch_size), params.k)
            decisions = decide_many(neighbours, params)
            report = evaluate(decisions, labels, params.default_route, texts=texts, routes=names)
            curve = threshold_curve(neighbours, labels, params, CURVE_THRESHOLDS, names)
            return Evaluated(
                source=source,
                index_version=index.version,
                model=index.manifest.model_id,
                params=params.to_dict(),
                report=report,
                curve=curve,
                seconds=time.perf_counter() - started,
            )
