"""Write and edit routes directories (tests, benchmarks)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from devkit.serving import SHIPPED_ROUTES

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
