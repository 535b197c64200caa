"""Index storage: versioned example indexes in Qdrant, embedded or on a server.

Names load on first use: the embedded store (Qdrant Edge) never imports the Qdrant client,
which takes seconds to import and is needed only for a server (`QdrantStore`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from router_core.store.edge import EdgeStore
    from router_core.store.factory import describe_store, open_store
    from router_core.store.protocol import IndexStore, OpenIndex, StoredPoints
    from router_core.store.server import QdrantStore

_HOMES = {
    "EdgeStore": "router_core.store.edge",
    "describe_store": "router_core.store.factory",
    "open_store": "router_core.store.factory",
    "IndexStore": "router_core.store.protocol",
    "OpenIndex": "router_core.store.protocol",
    "StoredPoints": "router_core.store.protocol",
    "QdrantStore": "router_core.store.server",
}

__all__ = ["EdgeStore", "IndexStore", "OpenIndex", "QdrantStore", "StoredPoints", "describe_store", "open_store"]


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'router_core.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
