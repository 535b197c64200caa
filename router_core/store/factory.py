"""Choose the index store from settings: a Qdrant server when a URL is set, else embedded."""

from __future__ import annotations

from router_core.settings import IndexSettings
from router_core.store.edge import EdgeStore
from router_core.store.protocol import IndexStore
from router_core.store.server import QdrantStore


def open_store(settings: IndexSettings) -> IndexStore:
    """The store the settings describe."""
    if settings.qdrant.url:
        from qdrant_client import QdrantClient  # deferred: only the server path needs it

        key = settings.qdrant.api_key.get_secret_value() if settings.qdrant.api_key else None
        client = QdrantClient(url=settings.qdrant.url, api_key=key, timeout=settings.qdrant.timeout_s)
        return QdrantStore(client, settings.qdrant.collection)
    return EdgeStore(settings.qdrant.data_dir, settings.qdrant.collection)


def describe_store(settings: IndexSettings) -> str:
    """Where the index lives, for messages (never includes the API key)."""
    q = settings.qdrant
    if q.url:
        return f"Qdrant at {q.url}, collection {q.collection!r}"
    return f"embedded index in {q.data_dir / q.collection}"
