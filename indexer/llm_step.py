"""Run the route set's LLM step on evaluated queries, for real (`eval FILE --llm`).

The vote's decisions are computed as usual; then, as the service does (`router_core.pipeline`:
`question`, `settle`), mode llm asks the decision model about every query and hybrid about
those in its uncertain band, a bounded number at a time, with a progress bar. Tokens are
counted from the endpoint's usage reports, and the structured output each answer came in
(router_llm.structured_output) is counted too. When most questions failed (errors, timeouts),
`check_answered` refuses the run: an accuracy would then measure the fallbacks, not the model.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

import numpy as np

from indexer.tables import pct, text_table
from router_core import Decision, RouterError, RouterSettings, RouteTable, pipeline
from router_core.params import Mode
from router_core.pipeline import RouteRequest
from router_llm.clients import ClientRegistry
from router_llm.decider import Asked, Decider
from router_llm.settings import DeciderSettings, LLMSettings


@dataclass(frozen=True)
class LLMOptions:
    """`eval --llm`: the decision model's settings and how to run it."""

    decider: DeciderSettings
    llm: LLMSettings
    mode: Mode | None = None  # overrides the route set's mode (llm or hybrid) for this evaluation
    concurrency: int = 4


def with_mode(table: RouteTable, options: LLMOptions) -> RouteTable:
    """The table as evaluated: the route set's mode, or the one --mode asks for."""
    mode = options.mode or table.mode
    if mode == "embedding":
        raise ValueError(
            "--llm needs mode llm or hybrid: set mode in _router.yaml (and re-index), or pass --mode llm|hybrid"
        )
    if not options.decider.model:
        raise ValueError("--llm needs a decision model: set ROUTER_DECIDER__MODEL (and its endpoint and key variable)")
    return replace(table, mode=mode)


def llm_summary(run: LLMRun, evaluated: int, out: TextIO) -> dict[str, Any]:
    """Print what the decision model did; the same as JSON. DecisionModelFailing (after the
    summary) when most questions got no answer: the caller then reports no accuracy."""
    share = run.asked / evaluated if evaluated else 0.0
    modes = ", ".join(f"{k} {v}" for k, v in sorted(run.output_modes.items())) or "- (no answer)"
    rows = [
        ("decision model", run.model),
        ("queries asked about", f"{run.asked} of {evaluated} ({pct(share)})"),
        ("calls (cache: a repeated question is asked once)", run.calls),
        ("outcomes", ", ".join(f"{k} {v}" for k, v in sorted(run.outcomes.items())) or "-"),
        ("structured output (answered calls)", modes),
        ("tokens (prompt + completion)", f"{run.prompt_tokens} + {run.completion_tokens}"),
        ("latency p50 / p99", f"{run.latency_p50_ms} / {run.latency_p99_ms} ms"),
        ("time", f"{run.seconds:.1f} s"),
    ]
    if run.agreement is not None:
        rows.append(("agreed with the vote", pct(run.agreement)))
    print("\n" + text_table(["LLM step", "value"], rows), file=out)
    if run.refused:
        print(f"  structured output: {run.refused}", file=out)
    for detail in run.detail:
        print(f"  failure: {detail}", file=out)
    check_answered(run)
    return {
        "model": run.model,
        "asked": run.asked,
        "share": share,
        "calls": run.calls,
        "outcomes": run.outcomes,
        "prompt_tokens": run.prompt_tokens,
        "completion_tokens": run.completion_tokens,
        "latency_p50_ms": run.latency_p50_ms,
        "latency_p99_ms": run.latency_p99_ms,
        "seconds": run.seconds,
        "agreement": run.agreement,
        "output_modes": run.output_modes,
        "output_mode_refused": run.refused or None,
    }


@dataclass(frozen=True)
class LLMRun:
    """What the decision model did over an evaluation."""

    model: str
    asked: int  # questions put to the model (cached repeats included)
    calls: int  # calls made
    outcomes: dict[str, int]
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    latency_p50_ms: float
    latency_p99_ms: float
    agreement: float | None  # hybrid: answers naming the vote's own route (or none when it fell back)
    detail: list[str] = field(default_factory=list)  # the first failure reasons, masked
    output_modes: dict[str, int] = field(default_factory=dict)  # calls answered, by structured output
    refused: str = ""  # why the endpoint is not asked in json_schema (its refusal, masked), "" when it is

    @property
    def failed(self) -> int:
        """Questions the model gave no answer to (an error, a timeout, no model)."""
        return sum(n for outcome, n in self.outcomes.items() if outcome in _FAILED)


_FAILED = frozenset({"error", "timeout", "unavailable"})


class DecisionModelFailing(RouterError):
    """Most questions to the decision model failed: no accuracy is reported."""


def check_answered(run: LLMRun) -> None:
    """Raise DecisionModelFailing when most questions got no answer, naming why and what to check."""
    if not run.asked or run.failed * 2 <= run.asked:
        return
    failed = ", ".join(f"{k} {v}" for k, v in sorted(run.outcomes.items()) if k in _FAILED)
    first = f"; first failure: {run.detail[0]}" if run.detail else ""
    raise DecisionModelFailing(
        f"the decision model failed on {run.failed} of {run.asked} questions ({failed}){first}. No accuracy "
        "is reported: it would measure the fallbacks, not the model. Check ROUTER_DECIDER__MODEL, __BASE_URL "
        "and its key variable; a local model on a CPU needs seconds per call (ROUTER_DECIDER__TIMEOUT_S)."
    )


async def _run(
    table: RouteTable,
    votes: Sequence[Decision],
    requests: Sequence[RouteRequest],
    decider: Decider,
    concurrency: int,
    progress: bool,
) -> tuple[list[Decision], list[Asked | None], str]:
    questions = [pipeline.question(r, v, table) for v, r in zip(votes, requests, strict=True)]
    answers: dict[object, Asked] = {}
    pending: dict[object, asyncio.Task[Asked]] = {}
    gate = asyncio.Semaphore(concurrency)
    done = 0
    todo = sum(q is not None for q in questions)

    async def ask(q_index: int) -> Asked:
        nonlocal done
        question = questions[q_index]
        assert question is not None
        async with gate:
            asked = await decider.ask(question.messages, question.allowed)
        done += 1
        if progress:
            print(f"\rdecision model: {done}/{todo}", end="", file=sys.stderr, flush=True)
        return asked

    for i, q in enumerate(questions):
        if q is not None and q.key not in pending:
            pending[q.key] = asyncio.create_task(ask(i))
    for key, task in pending.items():
        answers[key] = await task
    if progress and todo:
        print(file=sys.stderr)
    asked_per_query = [answers[q.key] if q is not None else None for q in questions]
    decided = [
        v if a is None else pipeline.settle(v, a.choice, table) for v, a in zip(votes, asked_per_query, strict=True)
    ]
    output = decider.status().output
    return decided, asked_per_query, output.refused if output else ""


def run_llm_step(
    table: RouteTable,
    votes: Sequence[Decision],
    requests: Sequence[RouteRequest],
    options: LLMOptions,
    *,
    progress: bool = True,
) -> tuple[list[Decision], LLMRun]:
    """The final decisions after the decision model, and what it did."""
    settings, llm, concurrency = options.decider, options.llm, options.concurrency

    async def main() -> tuple[list[Decision], list[Asked | None], str]:
        clients = ClientRegistry(llm)
        try:
            return await _run(table, votes, requests, Decider(settings, llm, clients), concurrency, progress)
        finally:
            await clients.close()

    started = time.perf_counter()
    decided, asked, refused = asyncio.run(main())
    seconds = time.perf_counter() - started
    real = [a for a in asked if a is not None]
    calls = {id(a): a for a in real}
    latencies = sorted(a.seconds * 1e3 for a in calls.values())
    agree = [
        agreed
        for v, a in zip(votes, asked, strict=True)
        if a is not None and (agreed := pipeline.agreement(v, a.choice, table)) is not None
    ]
    return decided, LLMRun(
        model=settings.model or "",
        asked=len(real),
        calls=len(calls),
        outcomes=dict(Counter(a.outcome for a in real)),
        prompt_tokens=sum(a.prompt_tokens for a in calls.values()),
        completion_tokens=sum(a.completion_tokens for a in calls.values()),
        seconds=seconds,
        latency_p50_ms=round(float(np.percentile(latencies, 50)), 2) if latencies else 0.0,
        latency_p99_ms=round(float(np.percentile(latencies, 99)), 2) if latencies else 0.0,
        agreement=sum(agree) / len(agree) if agree else None,
        detail=list(dict.fromkeys(a.detail for a in real if a.detail))[:5],
        output_modes=dict(Counter(a.output_mode for a in calls.values() if a.output_mode and a.choice is not None)),
        refused=refused,
    )


def llm_options(settings: RouterSettings, *, enabled: bool, mode: Mode | None, concurrency: int) -> LLMOptions | None:
    """`eval --llm [--mode M] [--concurrency N]`: the decision model's settings (from the
    environment: ROUTER_DECIDER__*, ROUTER_LLM__*), or None without --llm."""
    from indexer.settings import IndexerSettings

    if not enabled:
        if mode:
            raise ValueError("--mode applies with --llm only")
        return None
    if concurrency < 1:
        raise ValueError("--concurrency must be at least 1")
    decider = settings.decider if isinstance(settings, IndexerSettings) else DeciderSettings()
    llm = settings.llm if isinstance(settings, IndexerSettings) else LLMSettings()
    return LLMOptions(decider, llm, mode=mode, concurrency=concurrency)
