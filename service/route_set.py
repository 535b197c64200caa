"""A route set: what one router serves, as a value the services are built from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from router_core.settings import EmbeddingSettings, IndexSettings, RouteFileSettings, RouterSettings


@dataclass(frozen=True)
class RouteSet:
    """Where a router's routes and index are, and which model embeds its queries.

    The service serves one, built from its settings; the services (routing stage, index admin)
    take it as a value, so several independent route sets in one process need no change to
    the controllers' code, only more of these.
    """

    routes_dir: Path
    index: IndexSettings
    embedding: EmbeddingSettings
    follow_index_model: bool = True
    route_files: RouteFileSettings = field(default_factory=RouteFileSettings)

    @classmethod
    def from_settings(cls, settings: RouterSettings, *, follow_index_model: bool = True) -> RouteSet:
        """The route set the process settings describe."""
        return cls(settings.routes_dir, settings.index, settings.embedding, follow_index_model, settings.route_files)
