"""Moved to `router_core.routes_writer`, shared with the service (the review writes route files
too); the names stay importable from here for the indexer's commands."""

from router_core.routes_writer import (
    ROUTER_KEYS,
    WriteReport,
    write_conversation_params,
    write_decision_params,
    write_follow_ups,
    write_llm_params,
    write_replies,
    write_router_section,
)

__all__ = [
    "ROUTER_KEYS",
    "WriteReport",
    "write_conversation_params",
    "write_decision_params",
    "write_follow_ups",
    "write_llm_params",
    "write_replies",
    "write_router_section",
]
