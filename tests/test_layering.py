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


# -- the front door -------------------------------------------------------------------------------
# What code outside router_core may import from it: the front door (`router_core`) and these
# public modules. Anything else is an internal and needs an entry in INTERNAL_USES with its reason.
PUBLIC = {
    "router_core",
    "router_core.pipeline",  # the routing steps, for callers doing their own I/O
    "router_core.mixing",  # queries mixed from embedded texts' vectors (conversation contexts)
    "router_core.params",  # the parameter declarations (calibration grids, the YAML writer)
    "router_core.settings",
    "router_core.store",
    "router_core.embedding",
    "router_core.evaluation",  # scoring labelled queries
    "router_core.labelled",  # the labelled-data format
    "router_core.labelled_conversations",  # labelled conversations: the format and the scoring by kind of turn
    "router_core.manifest",  # what an index version records
    "router_core.errors",
    "router_core.decision_log",  # the decision log's records and settings
    "router_core.decision_log.store",  # its database adapter, imported where used (SQLAlchemy)
    "router_core.review",  # the guard against overfitting, the logged queries near a misroute
    "router_core.review.plan",  # the one planning function of the Review tab and `indexer review`
    "router_core.routes_writer",  # writing _router.yaml and route files, comments and order kept
    "router_core.examples_writer",  # adding examples to route files, comments and order kept
    "router_core.routes_dir",  # reading an untrusted folder's files (routes/, evals/), bounded
    "router_core.follow_ups",  # a route set's follow-ups: the file, the bank's similarity
    "router_core.replies",  # a route set's replies: the file, the chance of a new topic after one
}
_CALIBRATION = "calibration scores thousands of settings on the engines' arrays"
INTERNAL_USES = {
    ("indexer/calibration.py", "router_core.engine"): _CALIBRATION,
    ("indexer/calibration.py", "router_core.neighbours"): _CALIBRATION,
    ("indexer/calibration.py", "router_core.decision"): "the chosen setting re-scored with the vote's own decisions",
    ("indexer/calibration_ladder.py", "router_core.engine"): _CALIBRATION,
    ("indexer/calibration_ladder.py", "router_core.neighbours"): _CALIBRATION,
    ("indexer/calibration_objective.py", "router_core.engine"): _CALIBRATION,
    ("indexer/calibration_objective.py", "router_core.neighbours"): _CALIBRATION,
    ("indexer/route_thresholds.py", "router_core.engine"): _CALIBRATION,
    ("indexer/route_thresholds.py", "router_core.neighbours"): _CALIBRATION,
    ("indexer/hybrid.py", "router_core.llm_routing"): "the band's simulation runs the escalation rule vectorised",
    ("indexer/hybrid.py", "router_core.neighbours"): _CALIBRATION,
    ("indexer/conversation_calibration.py", "router_core.conversation_engine"): _CALIBRATION,
    ("indexer/conversation_calibration.py", "router_core.neighbours"): _CALIBRATION,
    ("indexer/conversations.py", "router_core.conversation"): _CALIBRATION,
    ("indexer/conversations.py", "router_core.conversation_engine"): _CALIBRATION,
    ("indexer/conversations.py", "router_core.decision"): _CALIBRATION,
    ("indexer/importer.py", "router_core.routes"): "writes route files by the loader's own rules (names, lengths)",
    (
        "indexer/follow_up_bank.py",
        "router_core.routes",
    ): "learns follow-ups by the loader's own rules (lengths, duplicates)",
    (
        "indexer/reply_bank.py",
        "router_core.routes",
    ): "learns replies by the loader's own rules (lengths, duplicates)",
    ("indexer/conversations.py", "router_core.neighbours"): _CALIBRATION,
    ("bench/candidates.py", "router_core.embedding.quality_model"): "whether the quality model is assembled",
    ("bench/conversation.py", "router_core.decision"): "the baselines of the data set's README (vote alone)",
    ("bench/conversation_sets.py", "router_core.conversation"): "the word-list ablation on the rule's own steps",
    ("bench/conversation_sets.py", "router_core.conversation_engine"): "the word-list ablation on the rule's own steps",
    ("bench/conversation_sets.py", "router_core.conversation_words"): "the word-list ablation on the rule's own steps",
    ("bench/conversation_sets.py", "router_core.decision"): "off-topic queries alone (the vote)",
}
OUTSIDE = ("service", "indexer", "bench", "devkit", "router_llm")


def _runtime_imports(path: Path) -> list[tuple[str, list[str]]]:
    """Imports a module runs (those under `if TYPE_CHECKING:` left out), absolute ones only."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def _files(package: str) -> list[Path]:
    return sorted(
        p for p in (ROOT / package).rglob("*.py") if not any(part.startswith(".") for part in p.relative_to(ROOT).parts)
    )


def test_code_outside_router_core_imports_its_front_door() -> None:
    """service, indexer, bench, devkit and router_llm import router_core's public names and
    modules only; each reach into an internal module is listed with its reason, and none is stale."""
    used: set[tuple[str, str]] = set()
    wrong = []
    for package in OUTSIDE:
        for path in _files(package):
            where = str(path.relative_to(ROOT))
            for module, _ in imports_of(path):
                if module.split(".")[0] != "router_core" or module in PUBLIC:
                    continue
                if (where, module) in INTERNAL_USES:
                    used.add((where, module))
                else:
                    wrong.append(f"{where} imports {module}: use the front door (router_core) or list why")
    assert not wrong, "\n".join(wrong)
    assert set(INTERNAL_USES) == used, f"stale entries: {sorted(set(INTERNAL_USES) - used)}"


def test_the_front_door_lists_each_public_name_once() -> None:
    """router_core.__all__ is exactly the names it loads lazily, and each one loads."""
    import router_core

    assert sorted(router_core.__all__) == sorted(router_core._HOMES)
    assert len(set(router_core.__all__)) == len(router_core.__all__)
    for name in router_core.__all__:
        assert getattr(router_core, name) is not None, name


@pytest.mark.parametrize("package", ["router_core", "router_llm", "service", "indexer"])
def test_no_import_cycles_inside_a_package(package: str) -> None:
    """Within a package no module imports itself back through others (indexer's commands and
    conversation commands used to import each other's private helpers)."""
    modules = {}
    for path in _files(package):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for module, names in _runtime_imports(path):
            for candidate in (module, *(f"{module}.{n}" for n in names)):
                if candidate in modules and candidate != name:
                    targets.add(candidate)
        graph[name] = targets
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_agents_raise_their_own_errors_not_http_ones() -> None:
    """service/agents imports neither the web framework nor the HTTP error classes: its errors
    (service/agents/errors.py) meet HTTP in service/errors.py alone."""
    wrong = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in _files("service/agents")
        for module, _ in imports_of(path)
        if module in ("service.errors", "service.controllers") or module.split(".")[0] == "litestar"
    ]
    assert not wrong, "\n".join(wrong)
