"""The router's core: routes, embeddings, index storage, the routing decision and re-indexing.

Imports no web framework and no LLM client; the service and the indexer both build on it. The
names here are the public surface: load routes, build and open an index, classify. The rest
lives in the modules and may change.
"""

from router_core.classify import classify_texts
from router_core.decision import Decision, decide
from router_core.embedding import Embedder, load_embedder
from router_core.errors import (
    IndexBusy,
    IndexIncompatible,
    IndexMissing,
    ModelUnavailable,
    Problem,
    RouterError,
    RoutesInvalid,
    StoreUnavailable,
)
from router_core.neighbours import Neighbour
from router_core.params import DecisionParams
from router_core.reindex import ReindexPlan, ReindexReport, plan_reindex, run_reindex
from router_core.routes import Route, RouteTable, load_routes
from router_core.settings import EmbeddingSettings, IndexSettings, RouterSettings
from router_core.store import IndexStore, OpenIndex, open_store

__all__ = [
    "Decision",
    "DecisionParams",
    "Embedder",
    "EmbeddingSettings",
    "IndexBusy",
    "IndexIncompatible",
    "IndexMissing",
    "IndexSettings",
    "IndexStore",
    "ModelUnavailable",
    "Neighbour",
    "OpenIndex",
    "Problem",
    "ReindexPlan",
    "ReindexReport",
    "Route",
    "RouteTable",
    "RouterError",
    "RouterSettings",
    "RoutesInvalid",
    "StoreUnavailable",
    "classify_texts",
    "decide",
    "load_embedder",
    "load_routes",
    "open_store",
    "plan_reindex",
    "run_reindex",
]
