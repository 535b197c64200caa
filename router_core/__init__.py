"""The router's core: routes, embeddings, index storage, the routing decision and re-indexing.

Imports no web framework and no LLM client; the service and the indexer both build on it.
"""

from router_core.agents import CannedAgent, LLMAgent, public_view
from router_core.classify import classify_texts, classify_vectors
from router_core.decision import Decision, Neighbour, RouteVote, decide
from router_core.embedding import DEFAULT_MODEL, Embedder
from router_core.errors import (
    IndexIncompatible,
    IndexMissing,
    ModelUnavailable,
    Problem,
    RouterError,
    RoutesInvalid,
    StoreUnavailable,
)
from router_core.manifest import ExamplePoint, IndexManifest, example_points, point_id
from router_core.reindex import ReindexPlan, ReindexReport, plan_reindex, run_reindex
from router_core.routes import DecisionParams, Route, RouteTable, load_routes
from router_core.settings import EmbeddingSettings, IndexSettings, QdrantSettings
from router_core.store import EdgeStore, IndexStore, OpenIndex, QdrantStore, open_store

__all__ = [
    "DEFAULT_MODEL",
    "CannedAgent",
    "Decision",
    "DecisionParams",
    "EdgeStore",
    "Embedder",
    "EmbeddingSettings",
    "ExamplePoint",
    "IndexIncompatible",
    "IndexManifest",
    "IndexMissing",
    "IndexSettings",
    "IndexStore",
    "LLMAgent",
    "ModelUnavailable",
    "Neighbour",
    "OpenIndex",
    "Problem",
    "QdrantSettings",
    "QdrantStore",
    "ReindexPlan",
    "ReindexReport",
    "Route",
    "RouteTable",
    "RouteVote",
    "RouterError",
    "RoutesInvalid",
    "StoreUnavailable",
    "classify_texts",
    "classify_vectors",
    "decide",
    "example_points",
    "load_routes",
    "open_store",
    "plan_reindex",
    "point_id",
    "public_view",
    "run_reindex",
]
