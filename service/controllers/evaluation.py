"""GET /v1/evals and POST /v1/evaluate: score labelled queries against the served index."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from router_core import curve_svg
from service.evaluation import Evaluator
from service.guards import caller_of, charge_queries
from service.schemas import problem_responses


class EvalFiles(msgspec.Struct):
    """The labelled files of the evals directory (`ROUTER_EVALS_DIR`)."""

    files: list[str]
    max_queries: int


class EvaluateRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Labelled queries as JSON Lines text (`{"text": ..., "label": ...}` per line; label
    `oos` or the default route's name: should fall back), or the name of a listed file."""

    jsonl: str | None = None
    file: str | None = None


class CurvePointOut(msgspec.Struct):
    """Accuracy figures at one global threshold."""

    threshold: float
    accuracy: float
    in_scope_accuracy: float
    fallback_recall: float
    fallback_precision: float


class EvaluateResponse(msgspec.Struct):
    """What `python -m indexer eval` reports for the same queries and index, with the curve."""

    source: str
    index_version: str
    model: str
    params: dict[str, Any]
    report: dict[str, Any]
    curve: list[CurvePointOut]
    curve_svg: str
    seconds: float


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
    """Accuracy (fallback as a class), in-scope accuracy, fallback precision and recall,
    per-route scores, confusion pairs and the curve over the global threshold, as
    `python -m indexer eval` computes them. The rate limit counts each labelled query; a caller
    runs one evaluation at a time (409 otherwise), beside other callers' evaluations."""
    labelled = await asyncio.to_thread(evaluator.read, jsonl=data.jsonl, file=data.file)
    charge_queries(request, len(labelled.queries))
    done = await evaluator.evaluate(labelled, caller=caller_of(request))
    return EvaluateResponse(
        source=done.source,
        index_version=done.index_version,
        model=done.model,
        params=done.params,
        report=done.report.to_dict(),
        curve=[CurvePointOut(**asdict(p)) for p in done.curve],
        curve_svg=curve_svg(done.curve, float(done.params["threshold"])),
        seconds=round(done.seconds, 3),
    )
