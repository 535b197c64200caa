"""Choose the index store from settings: a Qdrant server, or Qdrant Edge embedded on local disk."""

from __future__ import annotations

from router_core.settings import IndexSettings
from router_core.store.edge import EdgeStore
from router_core.store.protocol import IndexStore


def open_store(index: IndexSettings) -> IndexStore:
    """The store the index settings describe. The Qdrant client is imported only for a server:
    it takes seconds to import, and the embedded store does not use it."""
    if index.uses_server:
        from qdrant_client import QdrantClient

        from router_core.store.server import QdrantStore

        server = index.qdrant
        key = server.api_key.get_secret_value() if server.api_key else None
        client = QdrantClient(url=server.url, api_key=key, timeout=server.timeout_s)
        return QdrantStore(client, index.collection)
    return EdgeStore(index.data_dir, index.collection, scan=index.scan)


def describe_store(index: IndexSettings) -> str:
    """Where the index lives, for messages (never includes the API key)."""
    if index.uses_server:
        return f"Qdrant at {index.qdrant.url}, collection {index.collection!r}"
    return f"embedded index in {index.data_dir / index.collection}"
