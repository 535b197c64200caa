"""Imports run one way: the packages' dependency rules, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> top-level modules it must never import
FORBIDDEN = {
    "router_core": {"service", "indexer", "bench", "tests", "devkit", "router_llm", "litestar", "openai", "uvicorn"},
    "router_llm": {"service", "indexer", "bench", "tests", "devkit", "litestar"},
    "service": {"indexer", "bench", "tests", "devkit"},
    "indexer": {"service", "bench", "tests", "devkit", "litestar"},
    "devkit": {"bench", "tests", "indexer"},
    "bench": {"tests"},
}


def imports_of(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) for every import statement of a file."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_what_it_may(package: str) -> None:
    """router_core imports no web, LLM or tool code; service and indexer never import each other;
    bench never imports tests; the shared devkit imports neither."""
    # The package's own modules: not what sits in a virtual environment inside it (bench/.venv-peer).
    files = sorted(
        p for p in (ROOT / package).rglob("*.py") if not any(part.startswith(".") for part in p.relative_to(ROOT).parts)
    )
    assert files, f"{package} has no Python files"
    wrong = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in files
        for module, _ in imports_of(path)
        if module.split(".")[0] in FORBIDDEN[package]
    ]
    assert not wrong, "\n".join(wrong)


def test_tests_use_only_public_bench_functions() -> None:
    """Tests may smoke-test bench's public functions, never reach into its private ones."""
    wrong = [
        f"{path.relative_to(ROOT)} imports {name} from {module}"
        for path in sorted((ROOT / "tests").glob("*.py"))
        for module, names in imports_of(path)
        if module.split(".")[0] == "bench"
        for name in names
        if name.startswith("_")
    ]
    assert not wrong, "\n".join(wrong)
