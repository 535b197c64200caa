"""The contract every index store meets; the contract tests run it against each backend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from router_core.embedding import Vectors
from router_core.errors import StoreUnavailable
from router_core.follow_ups import follow_up_bank, rows_of, split_rows, take_rows
from router_core.manifest import ExamplePoint, IndexManifest
from router_core.neighbours import Neighbour
from router_core.replies import REPLY_ROUTE, ReplyBank, reply_bank
from router_core.routes import RouteTable


@dataclass(frozen=True)
class StoredPoints:
    """The points of one version with their vectors (row i belongs to points[i])."""

    points: tuple[ExamplePoint, ...]
    vectors: Vectors

    def by_id(self) -> dict[str, int]:
        """Row index of each point id."""
        return {p.id: i for i, p in enumerate(self.points)}

    def examples(self) -> StoredPoints:
        """The routes' examples only, without the route set's follow-ups and replies
        (router_core.follow_ups, router_core.replies)."""
        rows, _ = split_rows([p.route for p in self.points])
        if len(rows) == len(self.points):
            return self
        return StoredPoints(tuple(self.points[i] for i in rows), take_rows(self.vectors, rows))


def banks(version: str, stored: StoredPoints, table: RouteTable) -> tuple[Vectors, ReplyBank | None]:
    """A version's follow-ups' vectors and its replies (None: it has none), from its stored
    points; StoreUnavailable naming the version when they are damaged."""
    routes = [p.route for p in stored.points]
    _, follow_up_rows = split_rows(routes)
    reply_rows = rows_of(routes, REPLY_ROUTE)
    try:
        follow_ups = follow_up_bank(stored.vectors[follow_up_rows])
        replies = reply_bank(stored.vectors[reply_rows], table.replies) if table.replies or len(reply_rows) else None
    except ValueError as exc:
        raise StoreUnavailable(f"index version {version!r} is corrupt: {exc}") from exc
    return follow_ups, replies


def neighbour_from_payload(payload: Mapping[str, object] | None, score: float) -> Neighbour:
    """A search hit as a Neighbour; both backends store `text` and `route` in the payload."""
    payload = payload or {}
    return Neighbour(str(payload.get("text", "")), str(payload.get("route", "")), float(score))


class Searcher(Protocol):
    """Nearest-neighbour search over one opened version."""

    def search(self, vectors: Vectors, k: int) -> list[list[Neighbour]]:
        """The k most similar examples for each query vector, most similar first."""

    def close(self) -> None:
        """Release the version (files, locks, connections)."""


@dataclass(frozen=True)
class OpenIndex:
    """One index version opened for serving: everything a response is computed from."""

    manifest: IndexManifest
    table: RouteTable
    searcher: Searcher  # over the examples only (never the follow-ups or the replies)
    follow_ups: Vectors | None = None  # the route set's follow-ups' vectors (router_core.follow_ups)
    replies: ReplyBank | None = None  # the route set's replies (router_core.replies)

    @property
    def version(self) -> str:
        """The version's name."""
        return self.manifest.version

    def close(self) -> None:
        """Release the version."""
        self.searcher.close()


class IndexStore(Protocol):
    """Versioned indexes with one atomically switched live pointer."""

    def live_version(self) -> str | None:
        """The version being served, or None before the first index; IndexMissing when the
        live pointer names a version that does not exist."""

    def writing(self) -> AbstractContextManager[None]:
        """Hold the writer lock for a whole re-index; IndexBusy when another holds it (a
        store that cannot lock across processes holds nothing)."""

    def versions(self) -> list[str]:
        """Every complete version, oldest first."""

    def manifest(self, version: str) -> IndexManifest:
        """The manifest of a complete version."""

    def stored_points(self, version: str) -> StoredPoints:
        """The points and vectors of a complete version (to reuse unchanged embeddings)."""

    def write_version(self, manifest: IndexManifest, points: Sequence[ExamplePoint], vectors: Vectors) -> None:
        """Build a complete new version that is not live yet; all or nothing."""

    def activate(self, version: str) -> None:
        """Make `version` live in one atomic step."""

    def drop_version(self, version: str) -> bool:
        """Delete a version that is neither live nor in use; False when it was kept."""

    def open_version(self, version: str) -> OpenIndex:
        """Open a version for searching."""

    def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot be reached."""

    def close(self) -> None:
        """Release the store."""
