"""Micro-batching: queries that arrive while a forward pass runs share the next one.

One worker thread runs the CPU-heavy work (embed, search, decide), never the event loop. A lone
query waits for nothing; under load, every query queued meanwhile joins one batch, so
concurrent throughput rises with the batch instead of queueing one forward pass per request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

R = TypeVar("R")


@dataclass
class _Job(Generic[R]):
    texts: Sequence[str]
    future: asyncio.Future[list[R]]


class MicroBatcher(Generic[R]):
    """Runs `work(texts) -> one result per text` on a worker thread, batching callers."""

    def __init__(self, work: Callable[[list[str]], list[R]], max_batch: int = 64) -> None:
        self._work = work
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Job[R]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")

    def start(self) -> None:
        """Start the consumer on the running loop."""
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._consume())

    async def stop(self) -> None:
        """Stop the consumer and the worker thread."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    async def submit(self, texts: Sequence[str]) -> list[R]:
        """Results for `texts`, computed in some batch together with other callers' texts."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(texts, future))
        return await future

    async def _consume(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self._queue.get()]
            size = len(jobs[0].texts)
            while size < self._max_batch and not self._queue.empty():
                job = self._queue.get_nowait()
                jobs.append(job)
                size += len(job.texts)
            texts = [t for job in jobs for t in job.texts]
            try:
                results = await loop.run_in_executor(self._executor, self._work, texts)
            except Exception as exc:  # delivered to every caller of this batch
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            start = 0
            for job in jobs:
                end = start + len(job.texts)
                if not job.future.done():
                    job.future.set_result(results[start:end])
                start = end
