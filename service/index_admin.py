"""What operators do with a route set's index: see what is served, re-index, check readiness."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from router_core import Embedder, IndexStore, OpenIndex, ReindexReport, RouterError, load_routes, run_reindex
from service.errors import ServiceError
from service.live_index import IndexFollower, Served, check_compatible
from service.metrics import Metrics
from service.route_set import RouteSet
from service.yielding_embedder import YieldingEmbedder

T = TypeVar("T")


class ReindexBusy(ServiceError):
    """A re-index is already running."""

    status = 409
    title = "Re-index already running"


class ReindexTimeout(ServiceError):
    """The re-index did not finish in time; the endpoint is free again."""

    status = 504
    title = "Re-index timed out"


@dataclass(frozen=True)
class Readiness:
    """Whether the route set can serve, with the checks behind it."""

    ready: bool
    checks: dict[str, Any]


class IndexAdmin:
    """The index side of one route set: its store, the followed version, re-indexing."""

    def __init__(
        self,
        route_set: RouteSet,
        store: IndexStore,
        follower: IndexFollower,
        metrics: Metrics,
        *,
        timeout_s: float = 600.0,
    ) -> None:
        self.route_set = route_set
        self._store = store
        self._follower = follower
        self._metrics = metrics
        self._lock = asyncio.Lock()
        self._timeout_s = timeout_s
        self.reindex_error: str | None = None  # why the last re-index from the service failed

    @property
    def current(self) -> OpenIndex:
        """The version being served."""
        return self._follower.current

    @property
    def served(self) -> Served:
        """The version being served with its model and parity result."""
        return self._follower.served

    @property
    def reload_error(self) -> str | None:
        """Why the last attempt to follow the live pointer failed, if it did."""
        return self._follower.last_error

    @property
    def reindex_running(self) -> bool:
        """A re-index started here is running."""
        return self._lock.locked()

    async def versions(self) -> list[str]:
        """Every complete version in the store."""
        return await asyncio.get_running_loop().run_in_executor(None, self._store.versions)

    async def readiness(self) -> Readiness:
        """Ready when the model is loaded, the store reachable and the served version built with
        that model; the checks name the model and backend serving and the ones the index records."""
        loaded = self._follower.embedder
        checks: dict[str, Any] = {"model": loaded.model_id, "backend": loaded.backend}
        ok = True
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._store.ping)
            served = self._follower.served
            checks["model"] = served.embedder.model_id
            checks["backend"] = served.embedder.backend
            check_compatible(served.index, served.embedder)
            checks["index_version"] = served.index.version
            checks["index_model"] = served.index.manifest.model_id
            checks["index_backend"] = served.index.manifest.backend or "unrecorded"
            checks["parity"] = served.parity.to_dict() if served.parity else "not recorded"
        except RouterError as exc:
            ok = False
            checks["error"] = str(exc)
        if self._follower.last_error:
            checks["reload_error"] = self._follower.last_error
        return Readiness(ok, checks)

    async def reindex(self) -> ReindexReport:
        """Validate the routes directory, publish a new version if anything changed and follow
        it; ReindexBusy when one is already running (here, or in another process on the same
        index). Whatever happens (failure, timeout) the next call may run: a re-index still
        running after the timeout goes on in the background and holds the index's writer lock,
        so a new one is refused until it ends, never run beside it."""
        if self._lock.locked():
            raise ReindexBusy("a re-index is already running; try again when it finishes")
        async with self._lock:
            try:
                report = await asyncio.wait_for(in_daemon_thread(self._reindex), self._timeout_s)
            except TimeoutError:
                self._metrics.observe_reindex("timeout")
                self.reindex_error = f"timed out after {self._timeout_s:g} s (the job went on in the background)"
                raise ReindexTimeout(
                    f"the re-index did not finish within {self._timeout_s:g} s; it goes on in the background "
                    "(its version goes live if it succeeds) and new re-indexes are refused until it ends"
                ) from None
            except Exception as exc:
                self._metrics.observe_reindex("failed")
                self.reindex_error = str(exc) if isinstance(exc, RouterError) else f"unexpected {type(exc).__name__}"
                raise
            self.reindex_error = None
            self._metrics.observe_reindex("changed" if report.changed else "unchanged")
            await in_daemon_thread(self._follower.refresh)
        return report

    def _reindex(self) -> ReindexReport:
        # Same model as serving: encoded in slices that let query passes through.
        return reindex_set(self.route_set, self._store, self._follower.embedder)


def reindex_set(route_set: RouteSet, store: IndexStore, embedder: Embedder) -> ReindexReport:
    """Validate the set's routes folder and publish a new version into its index if anything
    changed (blocking), embedding in slices that let query passes of every set through."""
    return run_reindex(
        load_routes(route_set.routes_dir, route_set.route_files.policy()),
        store,
        YieldingEmbedder(embedder),
        batch_size=route_set.embedding.batch_size,
        keep_versions=route_set.index.keep_versions,
    )


def in_daemon_thread(fn: Callable[[], T]) -> asyncio.Future[T]:
    """Run `fn` on a daemon thread: a re-index stuck in a system call must not keep the process
    from stopping (the default executor is joined at shutdown)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)  # type: ignore[arg-type]

    def run() -> None:
        try:
            value = fn()
        except BaseException as exc:  # delivered to the awaiting coroutine
            loop.call_soon_threadsafe(settle, None, exc)
            return
        loop.call_soon_threadsafe(settle, value, None)

    threading.Thread(target=run, name="reindex", daemon=True).start()
    return future
