"""The playground with several route sets, in a real browser (the system's headless Chromium): the
header switches sets, and every panel then reads the chosen set."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from devkit.routes_dirs import index_route_sets
from devkit.serving import settings_for
from router_core import Embedder
from service.security import AuthSettings, SetKey
from tests import test_ui_browser as ui
from tests.conftest import ServiceFactory
from tests.test_route_sets import RUST, two_sets
from tests.test_ui_browser import Tab, wait_ready

browser = ui.browser  # the fixtures of the playground's browser tests
open_ui = ui.open_ui

pytestmark = [pytest.mark.slow, pytest.mark.browser]
BETA_KEY = "playground-beta-key"


def decided(tab: Tab, query: str) -> str:
    tab.type_query(query)
    return tab.page.inner_text("#decision-route")


def test_the_header_switches_the_route_set(
    tmp_path: Path, embedder: Embedder, start_service: ServiceFactory, open_ui: Callable[..., Tab]
) -> None:
    """Both sets are offered, the default one first; after choosing beta the same query shows
    beta's route (through /v1/sets/beta/classify), the header names the set and its router, and
    the routes and index panels show beta's, as its API endpoints say."""
    settings = settings_for(two_sets(tmp_path / "routes"), tmp_path / "data")
    index_route_sets(settings, embedder)
    url = start_service(settings)
    tab = open_ui(url)
    wait_ready(tab)
    page = tab.page
    assert page.is_visible("#route-set")
    assert page.eval_on_selector_all("#route-set option", "os => os.map(o => o.value)") == ["alpha", "beta"]
    assert page.input_value("#route-set") == "alpha" and decided(tab, RUST) == "coding"
    page.select_option("#route-set", "beta")
    page.wait_for_function("() => document.getElementById('live-version').textContent.includes('route set beta')")
    wait_ready(tab)
    assert decided(tab, RUST) == "maths"
    assert any(u.endswith("/v1/sets/beta/classify") for u in tab.requests)
    with httpx.Client(base_url=url, timeout=30) as c:
        beta = c.get("/v1/routes", params={"set": "beta"}).json()
        index = c.get("/admin/index", params={"set": "beta"}).json()
    assert "beta-router" in page.inner_text("#live-version") and beta["index_version"] in page.inner_text(
        "#live-version"
    )
    tab.tab("index")
    page.wait_for_selector("#index-model")
    assert page.inner_text("#index-version") == index["version"]
    tab.shot("route-sets-beta")
    page.reload()  # the choice is kept for the tab
    wait_ready(tab)
    assert page.input_value("#route-set") == "beta"


def test_a_key_of_one_set_sees_only_that_set(
    tmp_path: Path, embedder: Embedder, start_service: ServiceFactory, open_ui: Callable[..., Tab]
) -> None:
    """With a key limited to beta, the page works on beta (not the default set, which the key
    may not read) and offers no other set; no request is refused."""
    auth = AuthSettings(api_keys=[SetKey(key=SecretStr(BETA_KEY), sets=["beta"])])
    settings = settings_for(two_sets(tmp_path / "routes"), tmp_path / "data", auth=auth)
    index_route_sets(settings, embedder)
    tab = open_ui(start_service(settings))
    page = tab.page
    page.fill("#api-key", BETA_KEY)
    page.click("#key-form button[type=submit]")
    wait_ready(tab)
    assert not page.is_visible("#route-set") and decided(tab, RUST) == "maths"
    assert "route set beta" in page.inner_text("#live-version")
