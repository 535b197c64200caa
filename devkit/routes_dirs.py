"""Write and edit routes directories (tests, benchmarks)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from devkit.serving import SHIPPED_ROUTES
from router_core import Embedder, RouterSettings, load_routes, open_store, route_sets_of, run_reindex

FAKE_KEY_ENV = "FAKE_LLM_TEST_API_KEY"
FAKE_KEY = "sk-test-Zq8vT4nWc2LrY7pKx9Hs"


def point_agents_at(routes: Path, base_url: str, key_env: str = FAKE_KEY_ENV) -> None:
    """Make every LLM agent in a routes directory call `base_url` with the key in `key_env`."""
    for path in sorted(routes.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        agent = data.get("default_agent" if path.name == "_router.yaml" else "agent")
        if agent and agent.get("kind") == "llm":
            agent.update(base_url=base_url, api_key_env=key_env)
            path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def copy_shipped(target: Path) -> Path:
    """A private copy of the shipped routes."""
    shutil.copytree(SHIPPED_ROUTES, target)
    return target


def write_routes(target: Path, router: dict[str, Any], routes: dict[str, dict[str, Any]]) -> Path:
    """Write `_router.yaml` and one file per route."""
    target.mkdir(parents=True, exist_ok=True)
    (target / "_router.yaml").write_text(yaml.safe_dump(router, sort_keys=False), encoding="utf-8")
    for name, body in routes.items():
        text = yaml.safe_dump({"name": name, **body}, sort_keys=False)
        (target / f"{name}.yaml").write_text(text, encoding="utf-8")
    return target


def add_route(routes: Path, name: str, examples: list[str]) -> None:
    """Write a route file with a canned agent and these examples."""
    body = "\n".join(f"  - {e!r}" for e in examples)
    (routes / f"{name}.yaml").write_text(
        f"name: {name}\ndescription: {name} requests\n"
        f"agent: {{kind: canned, name: {name}-agent, reply: ok}}\nexamples:\n{body}\n"
    )


def shipped_sets(root: Path, names: Sequence[str]) -> Path:
    """A routes root holding a copy of the shipped routes per route set (`root/<name>/`)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        copy_shipped(root / name)
    return root


def swap_examples(routes: Path, first: str, second: str) -> None:
    """Exchange the examples of two route files (names, descriptions and agents stay): the
    same texts then lead to the other route name."""
    paths = [routes / f"{first}.yaml", routes / f"{second}.yaml"]
    data = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in paths]
    data[0]["examples"], data[1]["examples"] = data[1]["examples"], data[0]["examples"]
    for path, body in zip(paths, data, strict=True):
        path.write_text(yaml.safe_dump(body, sort_keys=False, allow_unicode=True), encoding="utf-8")


def rename_router(routes: Path, name: str) -> None:
    """Give a routes folder's `_router.yaml` another router name."""
    path = routes / "_router.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["name"] = name
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def index_route_sets(settings: RouterSettings, embedder: Embedder, names: Sequence[str] | None = None) -> None:
    """Index each route set of `settings` (or those named) into its own index, as
    `python -m indexer reindex` does."""
    found = route_sets_of(settings)
    for spec in found.sets:
        if names is not None and spec.name not in names:
            continue
        store = open_store(spec.index_settings(settings.index))
        try:
            run_reindex(load_routes(spec.routes_dir), store, embedder)
        finally:
            store.close()
