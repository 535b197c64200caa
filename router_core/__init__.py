"""The router's core: routes, embeddings, index storage, the routing decision and re-indexing.

Imports no web framework and no LLM client; the service and the indexer both build on it.
"""

from router_core.agents import CannedAgent, LLMAgent, public_view
from router_core.classify import classify_texts, classify_vectors
from router_core.decision import Decision, RouteVote, decide, decide_many
from router_core.embedding import DEFAULT_MODEL, Embedder, load_embedder
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
from router_core.manifest import ExamplePoint, IndexManifest, example_points, point_id
from router_core.neighbours import Neighbour
from router_core.params import DecisionParams
from router_core.reindex import ReindexPlan, ReindexReport, plan_reindex, run_reindex
from router_core.routes import Route, RouteTable, load_routes
from router_core.settings import EmbeddingSettings, IndexSettings, QdrantServerSettings, RouterSettings
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
    "IndexBusy",
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
    "QdrantServerSettings",
    "QdrantStore",
    "ReindexPlan",
    "ReindexReport",
    "Route",
    "RouteTable",
    "RouteVote",
    "RouterError",
    "RouterSettings",
    "RoutesInvalid",
    "StoreUnavailable",
    "classify_texts",
    "classify_vectors",
    "decide",
    "decide_many",
    "example_points",
    "load_embedder",
    "load_routes",
    "open_store",
    "plan_reindex",
    "point_id",
    "public_view",
    "run_reindex",
]
