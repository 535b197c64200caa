"""Route sets: several independent routers (routes, decision parameters, index) in one process.

Where the sets come from, in order:

1. `ROUTER_ROUTE_SETS` (`RouterSettings.route_sets`): names and folders, as the operator lists them;
2. the routes directory (`ROUTER_ROUTES_DIR`) holding route files: the single-folder layout,
   served unchanged as the one set `default`;
3. otherwise a routes root: each folder inside it is a set (`routes/<set>/*.yaml`, with its own
   `_router.yaml`), named by the folder.

A set's name is checked against `SET_NAME_PATTERN` (`[a-z0-9-]`) before it is used anywhere: a
folder named otherwise is refused, never served under another name. A name is never joined to a
path as given: a set's folder is the one its name was discovered with (or configured), and its
index is the collection `collection_for` derives (`router` for `default`, `router-<set>` for the
others) under the data directory, or on the Qdrant server; each set has its own versions, writer
lock and live pointer.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from router_core.errors import RouterError
from router_core.routes_dir import candidate_files, is_ignored
from router_core.settings import SET_NAME_PATTERN, IndexSettings, RouterSettings

DEFAULT_SET = "default"
_NAME = re.compile(SET_NAME_PATTERN)


class RouteSetsInvalid(RouterError):
    """The route sets cannot be read as configured: a bad name, a duplicate, a folder outside the
    routes root, too many sets, an unknown default; the message names it."""


class RouteSetUnknown(RouterError):
    """A route set name that is not one of the configured sets."""


def valid_set_name(name: str) -> bool:
    """`name` may name a route set (`[a-z0-9-]`, at most 32 characters, no leading dash)."""
    return _NAME.fullmatch(name) is not None


def collection_for(base: str, name: str) -> str:
    """The index collection (embedded directory, Qdrant alias) of set `name`: the configured
    collection itself for `default` (so a single-folder layout keeps its index), else
    `<collection>-<name>`. `name` must be valid (checked, never used raw)."""
    if not valid_set_name(name):
        raise RouteSetsInvalid(f"{name!r} is not a route set name ([a-z0-9-], at most 32 characters)")
    return base if name == DEFAULT_SET else f"{base}-{name}"


@dataclass(frozen=True)
class RouteSetSpec:
    """One route set: its name and its routes folder."""

    name: str
    routes_dir: Path

    def index_settings(self, index: IndexSettings) -> IndexSettings:
        """The index settings of this set: the same store, its own collection."""
        return index.model_copy(update={"collection": collection_for(index.collection, self.name)})


@dataclass(frozen=True)
class RouteSets:
    """The process's route sets, in name order, and the one the paths naming none use."""

    sets: tuple[RouteSetSpec, ...]
    default: str
    layout: str  # "single" (one folder, the set `default`), "folders" (a routes root) or "configured"

    @property
    def names(self) -> tuple[str, ...]:
        """The sets' names, in order."""
        return tuple(s.name for s in self.sets)

    def get(self, name: str) -> RouteSetSpec:
        """The set named `name`; RouteSetUnknown naming the sets there are."""
        for spec in self.sets:
            if spec.name == name:
                return spec
        raise RouteSetUnknown(f"no route set named {_quoted(name)}; the route sets are {', '.join(self.names)}")

    def settings_for(self, settings: RouterSettings, name: str) -> RouterSettings:
        """`settings` narrowed to one set: its routes folder and its index (the settings
        themselves in the single-folder layout)."""
        spec = self.get(name)
        if self.layout == "single":
            return settings
        narrowed = settings.model_copy(
            update={"routes_dir": spec.routes_dir, "index": spec.index_settings(settings.index)}
        )
        narrowed._route_set_origin = (settings.routes_dir if self.layout == "folders" else None, name)
        return narrowed


def route_sets_of(settings: RouterSettings) -> RouteSets:
    """The route sets the settings describe (module docstring); RouteSetsInvalid naming the problem."""
    limit = settings.route_files.max_sets
    if settings.route_sets:
        names = [e.name for e in settings.route_sets]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise RouteSetsInvalid(f"ROUTER_ROUTE_SETS names {', '.join(duplicates)} more than once")
        specs = tuple(sorted((RouteSetSpec(e.name, e.routes_dir) for e in settings.route_sets), key=lambda s: s.name))
        layout = "configured"
    else:
        specs, layout = _discover(settings.routes_dir)
    if len(specs) > limit:
        raise RouteSetsInvalid(
            f"{len(specs)} route sets; the limit is {limit} (ROUTER_ROUTE_FILES__MAX_SETS): "
            "each set holds an index open"
        )
    return RouteSets(specs, _default_of(specs, settings.default_set), layout)


def _discover(root: Path) -> tuple[tuple[RouteSetSpec, ...], str]:
    """The single-folder layout when `root` holds route files (or is not a folder, which loading
    the routes then reports), else one set per folder of the routes root."""
    if not root.is_dir() or candidate_files(root):
        return (RouteSetSpec(DEFAULT_SET, root),), "single"
    inside = Path(os.path.realpath(root))
    specs, problems = [], []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if is_ignored(entry.name) or not entry.is_dir():
            continue
        if not valid_set_name(entry.name):
            problems.append(f"{_quoted(entry.name)}: not a route set name ([a-z0-9-], at most 32 characters)")
        elif not Path(os.path.realpath(entry)).is_relative_to(inside):
            problems.append(f"{entry.name}: a symbolic link leading outside the routes root")
        else:
            specs.append(RouteSetSpec(entry.name, entry))
    if problems:
        listed = "; ".join(problems)
        raise RouteSetsInvalid(f"the routes root {root} holds folders that cannot be route sets: {listed}")
    if not specs:  # an empty folder: loading it as one set says "no route files"
        return (RouteSetSpec(DEFAULT_SET, root),), "single"
    return tuple(specs), "folders"


def _default_of(specs: tuple[RouteSetSpec, ...], configured: str | None) -> str:
    names = [s.name for s in specs]
    if configured is not None:
        if configured not in names:
            raise RouteSetsInvalid(
                f"ROUTER_DEFAULT_SET names {configured!r}, which is not a route set; "
                f"the route sets are {', '.join(names)}"
            )
        return configured
    return DEFAULT_SET if DEFAULT_SET in names else names[0]


def _quoted(name: str) -> str:
    """A name from outside (a folder, a URL), quoted short and printable."""
    shown = name if len(name) <= 40 else name[:37] + "..."
    return repr("".join(c if c.isprintable() else "?" for c in shown))
