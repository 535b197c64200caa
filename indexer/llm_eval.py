"""Run the route set's LLM step on evaluated queries, for real (`eval FILE --llm`).

The vote's decisions are computed as usual; then, as the service does (router_core.llm_routing:
`question_for`, `decision_after`), mode llm asks the decision model about every query and
hybrid about those in its uncertain band, a bounded number at a time, with a progress bar.
Tokens are counted from the endpoint's usage reports, and the structured output each answer
came in (router_llm.structured_output) is counted too. When most questions failed (errors,
timeouts), `check_answered` refuses the run: an accuracy would then measure the fallbacks, not
the model.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from router_core.decision import Decision
from router_core.errors import RouterError
from router_core.llm_routing import decision_after, question_for
from router_core.routes import RouteTable
from router_llm.clients import ClientRegistry
from router_llm.decider import Asked, Decider
from router_llm.settings import DeciderSettings, LLMSettings


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
    conversations: Sequence[Sequence[tuple[str, str]]],
    decider: Decider,
    concurrency: int,
    progress: bool,
) -> tuple[list[Decision], list[Asked | None], str]:
    questions = [question_for(table, v, c) for v, c in zip(votes, conversations, strict=True)]
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
        v if a is None else decision_after(table, v, a.choice) for v, a in zip(votes, asked_per_query, strict=True)
    ]
    output = decider.status().output
    return decided, asked_per_query, output.refused if output else ""


def run_llm_step(
    table: RouteTable,
    votes: Sequence[Decision],
    conversations: Sequence[Sequence[tuple[str, str]]],
    settings: DeciderSettings,
    llm: LLMSettings,
    *,
    concurrency: int = 4,
    progress: bool = True,
) -> tuple[list[Decision], LLMRun]:
    """The final decisions after the decision model, and what it did."""

    async def main() -> tuple[list[Decision], list[Asked | None], str]:
        clients = ClientRegistry(llm)
        try:
            return await _run(table, votes, conversations, Decider(settings, llm, clients), concurrency, progress)
        finally:
            await clients.close()

    started = time.perf_counter()
    decided, asked, refused = asyncio.run(main())
    seconds = time.perf_counter() - started
    real = [a for a in asked if a is not None]
    calls = {id(a): a for a in real}
    latencies = sorted(a.seconds * 1e3 for a in calls.values())
    agree = [
        (a.choice.route or table.params.default_route) == v.route
        for v, a in zip(votes, asked, strict=True)
        if a is not None and a.choice is not None and a.choice.recognised
    ]
    return decided, LLMRun(
        model=settings.model or "",
        asked=len(real),
        calls=len(calls),
        outcomes=dict(Counter(a.outcome for a in real)),
        prompt_tokens=sum(a.prompt_tokens for a in calls.values()),
        completion_tokens=sum(a.completion_tokens for a in calls.values()),
        seconds=seconds,
        latency_p50_ms=_quantile(latencies, 0.5),
        latency_p99_ms=_quantile(latencies, 0.99),
        agreement=sum(agree) / len(agree) if table.mode == "hybrid" and agree else None,
        detail=list(dict.fromkeys(a.detail for a in real if a.detail))[:5],
        output_modes=dict(Counter(a.output_mode for a in calls.values() if a.output_mode and a.choice is not None)),
        refused=refused,
    )


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return round(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))], 2)
