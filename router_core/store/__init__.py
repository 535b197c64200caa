"""Index storage: versioned example indexes in Qdrant, embedded or on a server."""

from router_core.store.edge import EdgeStore
from router_core.store.factory import describe_store, open_store
from router_core.store.protocol import IndexStore, OpenIndex, StoredPoints
from router_core.store.server import QdrantStore

__all__ = ["EdgeStore", "IndexStore", "OpenIndex", "QdrantStore", "StoredPoints", "describe_store", "open_store"]
