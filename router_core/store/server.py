"""Qdrant through qdrant-client: a server or cluster, or the client's local mode in tests.

Each version is a collection `<collection>__<version>` carrying its manifest as collection
metadata; the alias `<collection>` names the live one and is switched in one aliases request.
Searches go to the version's own collection, never the alias, so one response never mixes
versions. Every qdrant-client exception is turned into StoreUnavailable here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TypeVar

import numpy as np
from qdrant_client import QdrantClient, models

from router_core.embedding import Vectors
from router_core.errors import IndexMissing, RouterError, StoreUnavailable
from router_core.follow_ups import RESERVED_ROUTES, split_rows
from router_core.manifest import ExamplePoint, IndexManifest
from router_core.neighbours import Neighbour
from router_core.store.protocol import OpenIndex, StoredPoints, banks, neighbour_from_payload

_UPSERT_BATCH = 512
_SCROLL_PAGE = 2048
T = TypeVar("T")


class QdrantStore:
    """Versioned indexes as collections behind one alias."""

    def __init__(self, client: QdrantClient, collection: str = "router") -> None:
        self._client = client
        self.alias = collection
        self._prefix = f"{collection}__"

    def _name(self, version: str) -> str:
        return self._prefix + version

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except RouterError:
            raise
        except Exception as exc:  # qdrant-client raises transport, HTTP and value errors
            raise StoreUnavailable(f"Qdrant {what} failed: {exc}") from exc

    def live_version(self) -> str | None:
        """The collection behind the alias, as a version name."""
        aliases = self._call("list aliases", self._client.get_aliases).aliases
        for a in aliases:
            if a.alias_name == self.alias and a.collection_name.startswith(self._prefix):
                return a.collection_name[len(self._prefix) :]
        return None

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Nothing to hold: a Qdrant server has no lock processes could share. Two re-indexes
        at once are detected after the switch instead (ReindexReport.live_after)."""
        yield

    def versions(self) -> list[str]:
        """Every version collection, oldest first."""
        names = self._call("list collections", self._client.get_collections).collections
        return sorted(c.name[len(self._prefix) :] for c in names if c.name.startswith(self._prefix))

    def manifest(self, version: str) -> IndexManifest:
        """The manifest stored as the collection's metadata."""
        if version not in self.versions():
            raise IndexMissing(f"index version {version!r} not found in Qdrant")
        info = self._call("get collection", lambda: self._client.get_collection(self._name(version)))
        metadata = info.config.metadata or {}
        if "manifest" not in metadata:
            raise StoreUnavailable(f"collection {self._name(version)!r} has no router manifest")
        return IndexManifest.from_dict(metadata["manifest"])

    def stored_points(self, version: str) -> StoredPoints:
        """Scroll every point with its vector."""
        name = self._name(version)
        points: list[ExamplePoint] = []
        rows: list[list[float]] = []
        offset = None
        while True:
            page, offset = self._call(
                "scroll",
                partial(
                    self._client.scroll,
                    name,
                    limit=_SCROLL_PAGE,
                    offset=offset,
                    with_payload=True,
                    with_vectors=True,
                ),
            )
            for rec in page:
                payload = rec.payload or {}
                points.append(ExamplePoint(str(rec.id), str(payload["route"]), str(payload["text"])))
                rows.append(list(rec.vector))  # type: ignore[arg-type]  # unnamed dense vector
            if offset is None:
                break
        dim = self.manifest(version).dimension
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(rows), dim)
        return StoredPoints(tuple(points), vectors)

    def write_version(self, manifest: IndexManifest, points: Sequence[ExamplePoint], vectors: Vectors) -> None:
        """Create the version's collection and fill it; delete it again on any failure."""
        name = self._name(manifest.version)
        if manifest.version in self.versions():
            raise StoreUnavailable(f"index version {manifest.version!r} already exists")
        self._call(
            "create collection",
            lambda: self._client.create_collection(
                name,
                vectors_config=models.VectorParams(size=manifest.dimension, distance=models.Distance.COSINE),
                metadata={"manifest": manifest.to_dict()},
            ),
        )
        try:
            for start in range(0, len(points), _UPSERT_BATCH):
                batch = [
                    models.PointStruct(
                        id=p.id,
                        vector=vectors[start + i].tolist(),
                        payload={"route": p.route, "text": p.text},
                    )
                    for i, p in enumerate(points[start : start + _UPSERT_BATCH])
                ]
                self._call("upsert", partial(self._client.upsert, name, batch, wait=True))
            count = self._call("count", lambda: self._client.count(name, exact=True).count)
            if count != len(points):
                raise StoreUnavailable(f"version {manifest.version!r} holds {count} points, not {len(points)}")
        except BaseException:
            self._drop(name)
            raise

    def activate(self, version: str) -> None:
        """Move the alias to the version's collection in one request."""
        if version not in self.versions():
            raise IndexMissing(f"cannot activate missing version {version!r}")
        ops: list[models.CreateAliasOperation | models.DeleteAliasOperation] = []
        if self.live_version() is not None:
            ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=self.alias)))
        ops.append(
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=self._name(version), alias_name=self.alias)
            )
        )
        self._call("switch alias", lambda: self._client.update_collection_aliases(change_aliases_operations=ops))

    def drop_version(self, version: str) -> bool:
        """Delete a version that is not live. The server cannot see readers: the re-index keeps
        the previous version for replicas still on it (`keep_versions` >= 2)."""
        if version == self.live_version():
            return False
        self._drop(self._name(version))
        return True

    def _drop(self, name: str) -> None:
        self._call("delete collection", lambda: self._client.delete_collection(name))

    def open_version(self, version: str) -> OpenIndex:
        """A searcher bound to the version's own collection."""
        manifest = self.manifest(version)
        stored = self.stored_points(version)
        table = manifest.table(stored.points)
        follow_ups, replies = banks(version, stored, table)
        skip = len(split_rows([p.route for p in stored.points])[0]) < len(stored.points)
        searcher = _ServerSearcher(self, self._name(version), skip_reserved=skip)
        return OpenIndex(manifest, table, searcher, follow_ups, replies)

    def ping(self) -> None:
        """One cheap request."""
        self._call("ping", self._client.get_collections)

    def close(self) -> None:
        """Close the client."""
        self._client.close()


class _ServerSearcher:
    def __init__(self, store: QdrantStore, collection: str, *, skip_reserved: bool = False) -> None:
        self._store = store
        self._collection = collection
        # the follow-ups and replies share the version's collection and are never neighbours
        reserved = models.MatchAny(any=sorted(RESERVED_ROUTES))
        self._filter = (
            models.Filter(must_not=[models.FieldCondition(key="route", match=reserved)]) if skip_reserved else None
        )

    def search(self, vectors: Vectors, k: int) -> list[list[Neighbour]]:
        requests = [
            models.QueryRequest(query=row.tolist(), limit=k, with_payload=True, filter=self._filter) for row in vectors
        ]
        responses = self._store._call(
            "search",
            lambda: self._store._client.query_batch_points(self._collection, requests=requests),
        )
        return [[neighbour_from_payload(p.payload, p.score) for p in resp.points] for resp in responses]

    def close(self) -> None:
        """The client is shared and closed by the store."""
