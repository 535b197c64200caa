"""Shared fixtures: the real model, real embedded Qdrant, the real app over HTTP."""

from __future__ import annotations

import gc
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from devkit.serving import SHIPPED_ROUTES, serve, settings_for
from router_core import Embedder, load_embedder, load_routes, run_reindex
from router_core.store import EdgeStore
from service.app import create_app
from service.services import Services
from service.settings import ServiceSettings
from tests.llm_fixtures import fake_llm, fake_llm_server, llm_env, serve_routes  # noqa: F401  (fixtures)
from tests.memo_embedder import MemoEmbedder


@pytest.fixture(scope="session", autouse=True)
def derived_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where this session caches converted models (the ONNX export of the default model); the
    services and commands the tests start as processes share it through the environment, so the
    model is converted once per run, not once per data directory."""
    path = tmp_path_factory.mktemp("derived-models")
    with pytest.MonkeyPatch.context() as mp:  # the one variable set for the whole run (router_core.settings)
        mp.setenv("ROUTER_INDEX__MODELS_DIR", str(path))
        yield path


@pytest.fixture(scope="session")
def embedder(derived_dir: Path) -> MemoEmbedder:
    """The default model on the default backend (ONNX Runtime), loaded once for the whole run;
    each text embedded once per session."""
    return MemoEmbedder(load_embedder(cache_dir=derived_dir))


@pytest.fixture(scope="session")
def torch_embedder() -> Embedder:
    """The default model on torch, the reference implementation (loaded only by tests that compare)."""
    return load_embedder(backend="torch")


@pytest.fixture(scope="session")
def bare_embedder(embedder: MemoEmbedder) -> Embedder:
    """The same model without the session's memory of texts: for tests of timings."""
    return embedder.model


@pytest.fixture
def routes_dir(tmp_path: Path) -> Path:
    """A private copy of the shipped routes that a test may edit."""
    target = tmp_path / "routes"
    shutil.copytree(SHIPPED_ROUTES, target)
    return target


@pytest.fixture(scope="session")
def shipped_settings(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> ServiceSettings:
    """Settings of an embedded index built once from the shipped routes."""
    data = tmp_path_factory.mktemp("shipped-index")
    settings = settings_for(SHIPPED_ROUTES, data)
    run_reindex(load_routes(SHIPPED_ROUTES), EdgeStore(data), embedder)
    return settings


@pytest.fixture(scope="session")
def shipped_url(shipped_settings: ServiceSettings, embedder: Embedder) -> Iterator[str]:
    """Base URL of a service serving the shipped routes (shared; tests must not change it)."""
    runtime = Services.build(shipped_settings, embedder=embedder)
    with serve(create_app(services=runtime)) as url:
        yield url


@pytest.fixture(scope="session")
def client(shipped_url: str) -> Iterator[httpx.Client]:
    """An HTTP client for the shared service."""
    with httpx.Client(base_url=shipped_url, timeout=30) as c:
        yield c


ServiceFactory = Callable[[ServiceSettings], str]


@pytest.fixture
def start_service(embedder: Embedder) -> Iterator[ServiceFactory]:
    """Start a private service for given settings; stopped when the test ends. Like `python -m
    service` (service.startup.freeze_start_up_heap), the heap built so far is left out of the
    garbage collector's passes while it serves: here that is the whole test session's (a full
    pass over it, late in the suite, stops every thread for 0.3-0.7 s, the served event loop
    included); frozen without the collection before it (which would cost that pass in every
    test), and given back to the collector when the test ends."""
    stack: list[object] = []

    def start(settings: ServiceSettings) -> str:
        runtime = Services.build(settings, embedder=embedder)
        cm = serve(create_app(services=runtime))
        url = cm.__enter__()
        stack.append(cm)
        gc.freeze()
        return url

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)  # type: ignore[attr-defined]
    if stack:
        gc.unfreeze()
