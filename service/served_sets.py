"""The route sets a process serves, and those it cannot serve yet.

Each set is built on its own (`RouteSetServices.build`): a set whose index is missing, broken or
built with a model that cannot be loaded is reported (`/readyz` names it and why; its requests
are 503) while the others serve. Such a set is tried again every reload interval, backing off
to a minute, so that a re-index (`python -m indexer reindex --set NAME`) brings it up without a
restart. Only when no set can serve does the service refuse to start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from router_core import Embedder, IndexStore, ReindexReport, RouterError, RouteSets, open_store
from service.errors import ServiceError
from service.index_admin import ReindexBusy, ReindexTimeout, in_daemon_thread, reindex_set
from service.route_set import RouteSet
from service.settings import ServiceSettings

if TYPE_CHECKING:
    from service.services import RouteSetServices

log = logging.getLogger("router.sets")
RETRY_MIN_S = 1.0
RETRY_MAX_S = 60.0


class RouteSetNotFound(ServiceError):
    """No route set of that name."""

    status = 404
    title = "Route set not found"


class RouteSetUnavailable(ServiceError):
    """The route set exists but cannot serve (its index is missing or broken)."""

    status = 503
    title = "Route set unavailable"


@dataclass
class _Broken:
    route_set: RouteSet
    error: str
    retry_at: float = 0.0
    delay: float = RETRY_MIN_S


class ServedSets:
    """Every route set of the process by name: those serving, those that cannot (and why).

    A plain class, not a dataclass: handlers receive it by injection, and Litestar reads a
    dataclass's annotations (this one names the services module, which imports this one).
    """

    def __init__(
        self,
        found: RouteSets,
        serving: dict[str, RouteSetServices],
        broken: dict[str, _Broken],
        build_one: Callable[[RouteSet], RouteSetServices],
        model_for: Callable[[RouteSet, IndexStore], Embedder],
        *,
        reload_interval_s: float,
        reindex_timeout_s: float,
    ) -> None:
        self.found = found
        self.serving = serving
        self.broken = broken
        self.build_one = build_one
        self.model_for = model_for  # the model a set that cannot serve re-indexes with
        self.reload_interval_s = reload_interval_s
        self.reindex_timeout_s = reindex_timeout_s
        self._hooks: list[Callable[[RouteSetServices], None]] = []
        self._retrier: asyncio.Task[None] | None = None
        self._reindexing: dict[str, asyncio.Lock] = {}

    @classmethod
    def build(
        cls,
        found: RouteSets,
        settings: ServiceSettings,
        build_one: Callable[[RouteSet], RouteSetServices],
        model_for: Callable[[RouteSet, IndexStore], Embedder],
    ) -> ServedSets:
        """Build every set; raise the default set's error (else the first) when none serves."""
        serving: dict[str, RouteSetServices] = {}
        broken: dict[str, _Broken] = {}
        errors: dict[str, RouterError] = {}
        for spec in found.sets:
            route_set = RouteSet.from_settings(settings, follow_index_model=settings.follow_index_model, spec=spec)
            try:
                serving[spec.name] = build_one(route_set)
            except RouterError as exc:
                errors[spec.name] = exc
                broken[spec.name] = _Broken(route_set, str(exc), time.monotonic() + RETRY_MIN_S)
                if len(found.sets) > 1:
                    log.warning("route set %s cannot serve (the others do): %s", spec.name, exc)
        if not serving:
            raise errors.get(found.default) or next(iter(errors.values()))
        return cls(
            found,
            serving,
            broken,
            build_one,
            model_for,
            reload_interval_s=settings.reload_interval_s,
            reindex_timeout_s=settings.limits.reindex_timeout_s,
        )

    @property
    def default(self) -> str:
        """The set of the paths that name none."""
        return self.found.default

    @property
    def names(self) -> tuple[str, ...]:
        """Every set's name, serving or not, in order."""
        return self.found.names

    def get(self, name: str) -> RouteSetServices:
        """The services of set `name`; 404 for no such set, 503 (naming why) for one that cannot serve."""
        found = self.serving.get(name)
        if found is not None:
            return found
        broken = self.broken.get(name)
        if broken is not None:
            raise RouteSetUnavailable(f"route set {name!r} cannot serve: {broken.error}", route_set=name)
        raise RouteSetNotFound(
            f"no route set named {_shown(name)}; the route sets are {', '.join(self.names)}", route_set=_shown(name)
        )

    def route_set(self, name: str) -> RouteSet | None:
        """The value of set `name`, serving or not (None: no such set)."""
        if name in self.serving:
            return self.serving[name].route_set
        broken = self.broken.get(name)
        return broken.route_set if broken is not None else None

    def readiness(self) -> dict[str, dict[str, Any]]:
        """Per broken set: why it cannot serve (the serving ones are checked by their admin)."""
        return {name: {"ready": False, "error": b.error} for name, b in self.broken.items()}

    # -- life cycle ---------------------------------------------------------------------------
    def on_serving(self, hook: Callable[[RouteSetServices], None]) -> None:
        """Call `hook` for each set as it starts serving (at start-up, or once it recovers)."""
        self._hooks.append(hook)

    async def start(self) -> None:
        """Start every serving set, and the task trying the others again."""
        for services in self.serving.values():
            for hook in self._hooks:
                hook(services)
            await services.start()
        self._retrier = asyncio.get_running_loop().create_task(self._retry())

    async def stop(self) -> None:
        """Stop the retries and every serving set."""
        if self._retrier is not None:
            self._retrier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrier
        for services in list(self.serving.values()):
            await services.stop()

    async def recover(self, name: str) -> bool:
        """Try to build set `name` now (after its re-index, say); True when it serves."""
        broken = self.broken.get(name)
        if broken is None:
            return name in self.serving
        loop = asyncio.get_running_loop()
        try:
            services = await loop.run_in_executor(None, self.build_one, broken.route_set)
        except RouterError as exc:
            broken.error = str(exc)
            broken.delay = min(RETRY_MAX_S, broken.delay * 2)
            broken.retry_at = time.monotonic() + broken.delay
            return False
        for hook in self._hooks:
            hook(services)
        await services.start()
        self.serving[name] = services
        del self.broken[name]
        log.info("route set %s serves index version %s", name, services.follower.current.version)
        return True

    async def reindex_broken(self, name: str) -> ReindexReport:
        """Re-index set `name`, which cannot serve (its index is missing or broken), from its
        routes folder, then serve it if it can; the errors of an admin re-index (409, 504, the
        routes' problems)."""
        broken = self.broken[name]
        lock = self._reindexing.setdefault(name, asyncio.Lock())
        if lock.locked():
            raise ReindexBusy("a re-index of this route set is already running; try again when it finishes")

        def job() -> ReindexReport:
            store = open_store(broken.route_set.index)
            try:
                return reindex_set(broken.route_set, store, self.model_for(broken.route_set, store))
            finally:
                store.close()

        async with lock:
            try:
                report = await asyncio.wait_for(in_daemon_thread(job), self.reindex_timeout_s)
            except TimeoutError:
                raise ReindexTimeout(
                    f"the re-index did not finish within {self.reindex_timeout_s:g} s; it goes on in the background"
                ) from None
            broken.retry_at = 0.0
            await self.recover(name)
        return report

    async def _retry(self) -> None:
        while True:
            await asyncio.sleep(self.reload_interval_s)
            now = time.monotonic()
            for name in [n for n, b in self.broken.items() if b.retry_at <= now]:
                try:
                    await self.recover(name)
                except Exception:  # the retries must outlive any one failure
                    log.exception("route set %s: trying it again failed", name)


def _shown(name: str) -> str:
    """A set name from a request, quoted short and printable."""
    shown = name if len(name) <= 40 else name[:37] + "..."
    return "".join(c if c.isprintable() else "?" for c in shown)
