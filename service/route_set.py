"""A route set: what one router serves, as a value the services are built from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from router_core import DEFAULT_SET, RouteSetSpec
from router_core.settings import EmbeddingSettings, IndexSettings, RouteFileSettings, RouterSettings


@dataclass(frozen=True)
class RouteSet:
    """A route set's name, where its routes and index are, and which model embeds its queries.

    The service serves one per set of its settings (`router_core.route_sets`); the services
    (routing stage, index admin, evaluator, review) take it as a value, so the controllers serve
    any set without knowing how many there are.
    """

    routes_dir: Path
    index: IndexSettings
    embedding: EmbeddingSettings
    follow_index_model: bool = True
    route_files: RouteFileSettings = field(default_factory=RouteFileSettings)
    name: str = DEFAULT_SET

    @classmethod
    def from_settings(
        cls, settings: RouterSettings, *, follow_index_model: bool = True, spec: RouteSetSpec | None = None
    ) -> RouteSet:
        """The route set `spec` of the process settings (default: the settings' own folder and
        index, the set `default` of a single-folder layout)."""
        index = settings.index if spec is None else spec.index_settings(settings.index)
        return cls(
            settings.routes_dir if spec is None else spec.routes_dir,
            index,
            settings.embedding,
            follow_index_model,
            settings.route_files,
            DEFAULT_SET if spec is None else spec.name,
        )
