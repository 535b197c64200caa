"""Micro-batching: requests that arrive while a forward pass runs share the next one, and no
caller's big batch holds everyone else up.

One worker thread runs the CPU-heavy work (embed, search, vote), never the event loop. A lone
request waits for nothing; under load, requests queued meanwhile share a pass, so concurrent
throughput rises with the batch instead of queueing one forward pass per request.

A pass holds at most `max_batch` units and `max_cost` of work (the stage counts characters).
A request's items become units (`Unit`): by default one per item, but an item may bring units of
preparatory work ahead of it, whose results are not the caller's (the stage embeds each new text
of a conversation as a unit of its own, so a conversation of 20 long messages is charged and
split like the ~15 texts it costs, not carried through one pass as one item). A big batch
request is split across passes: each pass first gives the oldest waiting request one unit (so
every request progresses), then fills up with the requests that have the least work left. A
single query arriving behind two batches of 128 long queries rides in the next pass instead of
waiting for both batches to finish.

A caller that is cancelled (its client has gone) is dropped before the next pass: only the pass
already running finishes its units.

Several batchers may share one worker thread (`executor`): the service runs one batcher per
route set and one worker for all of them (the model is shared too, `service.models`). Each
batcher has at most one pass submitted at a time, and the worker takes passes in the order
they were submitted, so busy sets take turns pass by pass: a set's single query waits for at
most one pass of each other busy set, never for another set's whole backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Unit(Generic[T]):
    """One item of work for a pass, what it costs, and whether its result is the caller's
    (`keep`; False: work that prepares a later unit of the same request)."""

    item: T
    cost: int
    keep: bool = True


@dataclass(eq=False)
class _Job(Generic[T, R]):
    units: list[Unit[T]]
    future: asyncio.Future[list[R]]
    taken: int = 0  # units handed to a pass so far
    results: list[R] = field(default_factory=list)
    _after: list[int] = field(default_factory=list)  # cost of the units from position i on

    def __post_init__(self) -> None:
        total = 0
        after = [0] * (len(self.units) + 1)
        for i in range(len(self.units) - 1, -1, -1):
            total += self.units[i].cost
            after[i] = total
        self._after = after

    @property
    def left(self) -> int:
        """Cost of the units not yet handed to a pass."""
        return self._after[self.taken]


class MicroBatcher(Generic[T, R]):
    """Runs `work(items) -> one result per item` on a worker thread, batching callers fairly.

    `cost(item)` prices an item as one unit; `units(item)` (instead) splits it into units, the
    last of which is the item's own (`keep`)."""

    def __init__(
        self,
        work: Callable[[list[T]], list[R]],
        max_batch: int = 64,
        *,
        cost: Callable[[T], int] | None = None,
        max_cost: int | None = None,
        units: Callable[[T], Sequence[Unit[T]]] | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self._work = work
        self._max_batch = max_batch
        price = cost or (lambda _item: 1)
        self._units = units or (lambda item: (Unit(item, price(item)),))
        self._max_cost = max_cost
        self._queue: asyncio.Queue[_Job[T, R]] | None = None
        self._task: asyncio.Task[None] | None = None
        # A worker of its own, or one shared with other batchers (one pass at a time, in order).
        self._owns_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")
        # while a pass runs: it holds one request's units and no other request waited when it
        # was planned (read by `work` on the worker thread: the pass may use spare cores)
        self.lone_pass = False

    def start(self) -> None:
        """Start the consumer on the running loop."""
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._consume())

    async def stop(self) -> None:
        """Stop the consumer and the worker thread (a shared worker is its owner's to stop)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._owns_executor:
            self._executor.shutdown(wait=True)

    async def submit(self, items: Sequence[T]) -> list[R]:
        """Results for `items`, computed in one or more passes shared with other callers' items."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        if not items:
            return []
        future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        units = [replace(u, cost=max(1, u.cost)) for item in items for u in self._units(item)]
        await self._queue.put(_Job(units, future))
        return await future

    async def _consume(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        waiting: list[_Job[T, R]] = []  # oldest first
        while True:
            if not waiting:
                waiting.append(await self._queue.get())
            while not self._queue.empty():
                waiting.append(self._queue.get_nowait())
            waiting = [job for job in waiting if not job.future.done()]  # callers gone
            if not waiting:
                continue
            plan = self._plan(waiting)
            items = [u.item for job, n in plan for u in job.units[job.taken : job.taken + n]]
            self.lone_pass = len(waiting) == 1 and self._queue.empty()
            try:
                results = await loop.run_in_executor(self._executor, self._work, items)
            except Exception as exc:  # delivered to every caller with an item in this pass
                for job, _ in plan:
                    if not job.future.done():
                        job.future.set_exception(exc)
                waiting = [job for job in waiting if not job.future.done()]
                continue
            start = 0
            for job, n in plan:
                done = job.units[job.taken : job.taken + n]
                job.results.extend(r for u, r in zip(done, results[start : start + n], strict=True) if u.keep)
                job.taken += n
                start += n
                if job.taken == len(job.units) and not job.future.done():
                    job.future.set_result(job.results)
            waiting = [job for job in waiting if job.taken < len(job.units) and not job.future.done()]

    def _plan(self, waiting: list[_Job[T, R]]) -> list[tuple[_Job[T, R], int]]:
        """How many units each waiting job puts into the next pass: one from the oldest, then
        the jobs with the least work left, within the pass's unit and cost budget."""
        taking: dict[int, int] = {}
        count = 0
        cost = 0

        def take(job: _Job[T, R], limit: int) -> None:
            nonlocal count, cost
            index = id(job)
            while count < self._max_batch and taking.get(index, 0) < limit:
                position = job.taken + taking.get(index, 0)
                if position >= len(job.units):
                    return
                item_cost = job.units[position].cost
                if count and self._max_cost is not None and cost + item_cost > self._max_cost:
                    return
                taking[index] = taking.get(index, 0) + 1
                count += 1
                cost += item_cost

        take(waiting[0], 1)
        for job in sorted(waiting, key=lambda j: j.left):
            take(job, len(job.units))
        by_id = {id(job): job for job in waiting}
        return [(by_id[index], n) for index, n in taking.items() if n]
