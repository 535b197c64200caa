"""The router's core: routes, embeddings, index storage, the routing pipeline and re-indexing.

Imports no web framework and no LLM client; the service, the indexer and the benchmarks all
build on it through the names below, the public surface (what `tests/test_layering.py`
lets them import). A few modules are public too, for what the names do not cover:
`router_core.pipeline` (the routing steps, for callers that do their own I/O),
`router_core.params` (the parameter declarations), `router_core.settings`,
`router_core.store` and `router_core.embedding` (backends), `router_core.labelled` and
`router_core.labelled_conversations` (labelled data and its scoring), `router_core.follow_ups`
and `router_core.replies` (a route set's follow-ups and replies). The rest may change.

    table = load_routes("routes/")
    store = open_store(settings.index); run_reindex(table, store, embedder)
    router = Router(store.open_version(store.live_version()), embedder)
    router.classify(["How do I use async with Rust?"])      # [Decision(route="coding", ...)]

Names are loaded on first use, so that `import router_core` (and a command's `--help`) does not
import the model runtimes or the Qdrant client it may never need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from router_core.agents import CannedAgent, LLMAgent, public_view
    from router_core.configured import embedder_from_settings
    from router_core.conversation import Turn
    from router_core.curve_chart import curve_svg
    from router_core.decision import Decision, RouteVote, TurnShare
    from router_core.embedding import Embedder, Vectors, load_embedder
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
    from router_core.evaluation import EvalReport, evaluate
    from router_core.llm_routing import Question, RouteChoice, answer_schema, read_choice
    from router_core.neighbours import Neighbour
    from router_core.params import ConversationParams, DecisionParams, LLMRoutingParams
    from router_core.pipeline import RouteRequest
    from router_core.progress import NoSteps, Steps
    from router_core.reasons import Reason
    from router_core.reindex import ReindexPlan, ReindexReport, live_to_replace, plan_reindex, run_reindex
    from router_core.route_policy import RoutePolicy
    from router_core.route_sets import (
        DEFAULT_SET,
        RouteSets,
        RouteSetsInvalid,
        RouteSetSpec,
        RouteSetUnknown,
        collection_for,
        route_sets_of,
        valid_set_name,
    )
    from router_core.router import Router, Routing
    from router_core.routes import ROUTER_FILE, Route, RouteTable, load_routes
    from router_core.settings import EmbeddingSettings, IndexSettings, RouterSettings
    from router_core.store import IndexStore, OpenIndex, open_store

_HOMES = {
    **dict.fromkeys(("CannedAgent", "LLMAgent", "public_view"), "router_core.agents"),
    "embedder_from_settings": "router_core.configured",
    "Turn": "router_core.conversation",
    "curve_svg": "router_core.curve_chart",
    "Decision": "router_core.decision",
    "RouteVote": "router_core.decision",
    "TurnShare": "router_core.decision",
    "Embedder": "router_core.embedding",
    "Vectors": "router_core.embedding",
    "load_embedder": "router_core.embedding",
    **dict.fromkeys(
        (
            "IndexBusy",
            "IndexIncompatible",
            "IndexMissing",
            "ModelUnavailable",
            "Problem",
            "RouterError",
            "RoutesInvalid",
            "StoreUnavailable",
        ),
        "router_core.errors",
    ),
    "EvalReport": "router_core.evaluation",
    "evaluate": "router_core.evaluation",
    "Neighbour": "router_core.neighbours",
    "ConversationParams": "router_core.params",
    "DecisionParams": "router_core.params",
    "LLMRoutingParams": "router_core.params",
    **dict.fromkeys(("Question", "RouteChoice", "answer_schema", "read_choice"), "router_core.llm_routing"),
    "RouteRequest": "router_core.pipeline",
    **dict.fromkeys(("NoSteps", "Steps"), "router_core.progress"),
    "Reason": "router_core.reasons",
    "RoutePolicy": "router_core.route_policy",
    **dict.fromkeys(
        (
            "DEFAULT_SET",
            "RouteSetSpec",
            "RouteSets",
            "RouteSetsInvalid",
            "RouteSetUnknown",
            "collection_for",
            "route_sets_of",
            "valid_set_name",
        ),
        "router_core.route_sets",
    ),
    **dict.fromkeys(
        ("ReindexPlan", "ReindexReport", "live_to_replace", "plan_reindex", "run_reindex"), "router_core.reindex"
    ),
    "Router": "router_core.router",
    "Routing": "router_core.router",
    **dict.fromkeys(("ROUTER_FILE", "Route", "RouteTable", "load_routes"), "router_core.routes"),
    **dict.fromkeys(("EmbeddingSettings", "IndexSettings", "RouterSettings"), "router_core.settings"),
    **dict.fromkeys(("IndexStore", "OpenIndex", "open_store"), "router_core.store"),
}

__all__ = [
    "DEFAULT_SET",
    "ROUTER_FILE",
    "CannedAgent",
    "ConversationParams",
    "Decision",
    "DecisionParams",
    "Embedder",
    "EmbeddingSettings",
    "EvalReport",
    "IndexBusy",
    "IndexIncompatible",
    "IndexMissing",
    "IndexSettings",
    "IndexStore",
    "LLMAgent",
    "LLMRoutingParams",
    "ModelUnavailable",
    "Neighbour",
    "NoSteps",
    "OpenIndex",
    "Problem",
    "Question",
    "Reason",
    "ReindexPlan",
    "ReindexReport",
    "Route",
    "RouteChoice",
    "RoutePolicy",
    "RouteRequest",
    "RouteSetSpec",
    "RouteSetUnknown",
    "RouteSets",
    "RouteSetsInvalid",
    "RouteTable",
    "RouteVote",
    "Router",
    "RouterError",
    "RouterSettings",
    "RoutesInvalid",
    "Routing",
    "Steps",
    "StoreUnavailable",
    "Turn",
    "TurnShare",
    "Vectors",
    "answer_schema",
    "collection_for",
    "curve_svg",
    "embedder_from_settings",
    "evaluate",
    "live_to_replace",
    "load_embedder",
    "load_routes",
    "open_store",
    "plan_reindex",
    "public_view",
    "read_choice",
    "route_sets_of",
    "run_reindex",
    "valid_set_name",
]


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'router_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
