"""GET /v1/evals and POST /v1/evaluate: score labelled queries, or labelled conversations by
kind of turn, against the served index."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any, Literal

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from router_core import curve_svg
from router_core.labelled_conversations import TurnTypeReport
from service.evaluation import Evaluator
from service.guards import caller_of, charge_queries
from service.schemas import problem_responses


class EvalFiles(msgspec.Struct):
    """The labelled files of the evals directory (`ROUTER_EVALS_DIR`)."""

    files: list[str]
    max_queries: int


class EvaluateRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Labelled queries as JSON Lines text (`{"text": ..., "label": ...}` per line; label
    `oos` or the default route's name: should fall back), or labelled conversations
    (`{"id": ..., "messages": [{"role", "content", "route"?}]}` per line), or the name of a
    listed file of either kind."""

    jsonl: str | None = None
    file: str | None = None


class CurvePointOut(msgspec.Struct):
    """Accuracy figures at one global threshold."""

    threshold: float
    accuracy: float
    in_scope_accuracy: float
    fallback_recall: float
    fallback_precision: float


class EvaluateResponse(msgspec.Struct, omit_defaults=True):
    """What `python -m indexer eval` reports for the same file and index.

    `kind` `queries`: `report` holds accuracy, fallback precision and recall, per-route scores
    and confusions, with the curve over the global threshold. `kind` `conversations`: `report`
    holds the accuracy by kind of turn (`scores`: all, first of domain, follow-up, switch, and
    their `counts`) beside the last message alone (`last_message`), the decisions' `reasons`,
    and the misrouted turns (`misrouted_total`, the first MAX_MISROUTED in `misrouted` with up
    to 4 messages before each, texts cut to MAX_CONTEXT_CHARS characters).
    """

    source: str
    index_version: str
    model: str
    params: dict[str, Any]
    report: dict[str, Any]
    seconds: float
    kind: Literal["queries", "conversations"] = "queries"
    curve: list[CurvePointOut] | None = None
    curve_svg: str | None = None


MAX_MISROUTED = 100
MAX_CONTEXT_CHARS = 500


@get(
    "/v1/evals",
    tags=["evaluation"],
    summary="Labelled files to evaluate",
    responses=problem_responses(401, 403, 404, 429, 503),
)
async def eval_files(evaluator: NamedDependency[Evaluator]) -> EvalFiles:
    """The JSON Lines files of the evals directory, by name."""
    return EvalFiles(await asyncio.to_thread(evaluator.files), evaluator.max_queries)


@post(
    "/v1/evaluate",
    status_code=200,
    tags=["evaluation"],
    summary="Evaluate labelled queries against the served index",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 429, 503),
)
async def evaluate_queries(
    data: JSONBody[EvaluateRequest], evaluator: NamedDependency[Evaluator], request: Request[Any, Any, Any]
) -> EvaluateResponse:
    """Labelled queries: accuracy (fallback as a class), in-scope accuracy, fallback precision
    and recall, per-route scores, confusion pairs and the curve over the global threshold.
    Labelled conversations: accuracy by kind of turn beside the last message alone, reasons and
    misrouted turns. Both as `python -m indexer eval` computes them. The rate limit counts each
    labelled query, or each text a conversations file makes the router embed; a caller runs one
    evaluation at a time (409 otherwise), beside other callers' evaluations."""
    labelled = await asyncio.to_thread(evaluator.read, jsonl=data.jsonl, file=data.file)
    charge_queries(request, await asyncio.to_thread(evaluator.cost, labelled))
    done = await evaluator.evaluate(labelled, caller=caller_of(request))
    base = EvaluateResponse(done.source, done.index_version, done.model, done.params, {}, round(done.seconds, 3))
    if done.turns is not None:
        return msgspec.structs.replace(base, report=_turns_report(done.turns), kind="conversations")
    assert done.report is not None
    return msgspec.structs.replace(
        base,
        report=done.report.to_dict(),
        curve=[CurvePointOut(**asdict(p)) for p in done.curve],
        curve_svg=curve_svg(done.curve, float(done.params["threshold"])),
    )


def _turns_report(turns: TurnTypeReport) -> dict[str, Any]:
    """The report of `indexer eval --json` for conversations, its misrouted turns bounded."""
    report = turns.to_dict()
    report["misrouted_total"] = len(report["misrouted"])
    report["misrouted"] = report["misrouted"][:MAX_MISROUTED]
    for m in report["misrouted"]:
        for message in m["context"]:
            message["text"] = message["text"][:MAX_CONTEXT_CHARS]
    return report
