"""Index storage: versioned example indexes in Qdrant, embedded or on a server."""

from router_core.store.edge import EdgeStore
from router_core.store.factory import open_store
from router_core.store.protocol import IndexStore, OpenIndex, StoredPoints
from router_core.store.server import QdrantStore

__all__ = ["EdgeStore", "IndexStore", "OpenIndex", "QdrantStore", "StoredPoints", "open_store"]
