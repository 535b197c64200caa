"""What an index version is: its points (one per example) and the manifest describing it."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from router_core.errors import StoreUnavailable
from router_core.follow_ups import FOLLOW_UP_ROUTE
from router_core.replies import REPLY_ROUTE
from router_core.routes import RouteTable

POINT_NAMESPACE = uuid.UUID("6f1c1f64-3a55-4d0e-9a57-7d8f1b0c2e11")
MANIFEST_FORMAT = 1


def point_id(route: str, text: str) -> str:
    """Deterministic id of one example, so re-indexing the same data yields the same points."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{route}:{text}"))


@dataclass(frozen=True)
class ExamplePoint:
    """One example utterance of one route, as stored in the index."""

    id: str
    route: str
    text: str


def example_points(table: RouteTable) -> tuple[ExamplePoint, ...]:
    """Every example of every route as a point, in route-file order, then the route set's
    follow-ups and replies (router_core.follow_ups, router_core.replies: points of routes no
    route can be called)."""
    examples = tuple(ExamplePoint(point_id(r.name, text), r.name, text) for r in table.routes for text in r.examples)
    follow_ups = tuple(
        ExamplePoint(point_id(FOLLOW_UP_ROUTE, text), FOLLOW_UP_ROUTE, text) for text in table.follow_ups
    )
    replies = tuple(ExamplePoint(point_id(REPLY_ROUTE, r.text), REPLY_ROUTE, r.text) for r in table.replies)
    return examples + follow_ups + replies


def fingerprint(model_id: str, dimension: int, table: RouteTable) -> str:
    """A hash of everything a version is built from: equal fingerprints mean equal indexes."""
    ids = sorted(p.id for p in example_points(table))
    blob = json.dumps(
        {"model": model_id, "dim": dimension, "table": table.to_dict(), "points": ids},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def new_version_id(fp: str, now: datetime | None = None) -> str:
    """A sortable, unique version name: UTC build time plus the start of the fingerprint."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dt%H%M%S%f")
    return f"v{stamp}-{fp[:8]}"


@dataclass(frozen=True)
class IndexManifest:
    """Describes one index version: model, dimension, route table, when it was built, the
    embedding backend that built it and the reference vectors a serving backend must reproduce
    (`router_core.embedding.parity`; None in versions built before they were recorded)."""

    version: str
    created_at: str
    model_id: str
    dimension: int
    fingerprint: str
    points: int
    route_table: Mapping[str, Any]
    format: int = MANIFEST_FORMAT
    model_source: str = ""  # name or path to load the model from; "" in older versions
    backend: str = ""  # what embedded this version's new examples; "" in older versions (torch)
    reference: Mapping[str, Any] | None = None  # Reference.to_dict() of the version's vectors

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["route_table"] = dict(self.route_table)
        data["reference"] = dict(self.reference) if self.reference is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IndexManifest:
        """Inverse of `to_dict`; unknown keys are ignored so newer builds stay readable."""
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})

    def table(self, points: Sequence[ExamplePoint]) -> RouteTable:
        """The route table this version was built from, with its examples."""
        examples: dict[str, list[str]] = {}
        for p in points:
            examples.setdefault(p.route, []).append(p.text)
        try:
            return RouteTable.from_dict(self.route_table, {k: tuple(v) for k, v in examples.items()})
        except (KeyError, TypeError, ValueError) as exc:  # a damaged or foreign manifest
            raise StoreUnavailable(f"index version {self.version!r} has an unreadable route table: {exc!r}") from exc
