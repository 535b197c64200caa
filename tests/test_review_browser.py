"""The Review tab in a real browser (the system's headless Chromium, as tests/test_ui_browser.py
drives it): a misrouted query fixed from feedback to a better route, and what a non-admin key
sees. Any console error fails a test; screenshots land in test-artifacts/ui/."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from devkit.serving import SHIPPED_EVALS, settings_for
from router_core import Embedder, load_routes, run_reindex
from router_core.store import EdgeStore
from service.security import AuthSettings
from tests import test_ui_browser as ui
from tests.conftest import ServiceFactory
from tests.test_ui_browser import ARTIFACTS, Tab, wait_ready

# The playground's browser fixtures, shared: one Chromium per module, a fresh context per page.
browser = ui.browser
open_ui = ui.open_ui

pytestmark = [pytest.mark.slow, pytest.mark.browser]
MISROUTED = "how many legs do three spiders have altogether"  # maths, but below every threshold


def private_service(
    tmp_path: Path, routes_dir: Path, embedder: Embedder, start: ServiceFactory, **extra: object
) -> str:
    """A service on a private copy of the shipped routes and evals, its index built."""
    data, evals = tmp_path / "data", tmp_path / "evals"
    shutil.copytree(SHIPPED_EVALS, evals)
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    return start(settings_for(routes_dir, data, evals_dir=evals, **extra))


def test_feedback_to_review_to_example_to_reindex_routes_the_query_right(
    open_ui: Callable[..., Tab], tmp_path: Path, routes_dir: Path, embedder: Embedder, start_service: ServiceFactory
) -> None:
    """feedback -> Review -> add as example (diff and guard shown, then saved through the YAML
    writer) -> Re-index now -> the reviewed query shows before/after and now routes to maths;
    the browser part takes under a minute."""
    url = private_service(tmp_path, routes_dir, embedder, start_service)
    before_file = (routes_dir / "maths.yaml").read_text()
    with httpx.Client(base_url=url, timeout=60) as api:
        first = api.post("/v1/classify", json={"query": MISROUTED}, headers={"X-Request-ID": "spiders-1"})
        assert first.json()["route"] == "default"
        given = api.post("/v1/feedback", json={"request_id": "spiders-1", "route": "maths", "source": "user"})
        assert given.status_code == 200 and given.json()["recorded"] is True

        started = time.monotonic()
        tab = open_ui(url)
        wait_ready(tab)
        page = tab.page
        tab.tab("review")
        item = "#review-items li[data-request-id='spiders-1']"
        page.wait_for_selector(item)
        assert page.inner_text(f"{item} .text") == MISROUTED
        assert page.input_value(f"{item} select.route-choice") == "maths"
        page.click(f"{item} .act-example")
        page.wait_for_selector("#review-preview:not([hidden])")
        assert page.inner_text("#review-guard") == "this change fixes 1 reviewed query and breaks 0 evaluation queries"
        assert f'+  - "{MISROUTED}"' in page.inner_text("#review-diff")
        assert page.locator("#review-figures-table tbody tr").count() == 4
        tab.shot("desktop-review-preview")
        page.click("#review-save")
        page.wait_for_function("() => document.getElementById('review-status').innerText.startsWith('Saved to')")

        after_file = (routes_dir / "maths.yaml").read_text()
        assert after_file == before_file + f'  - "{MISROUTED}"\n'  # appended in the list's style, the rest kept

        tab.tab("index")
        page.wait_for_selector("#reindex")
        page.click("#reindex")
        page.wait_for_function("() => document.getElementById('reindex-result').innerText.startsWith('Published')")
        tab.tab("review")
        page.check("input[name=review-queue][value=reviewed]")
        shown = "#review-items li[data-request-id='spiders-1'] .before-after"
        page.wait_for_selector(shown)
        elapsed = time.monotonic() - started
        assert page.get_attribute(shown, "data-before") == "default"
        assert page.get_attribute(shown, "data-after") == "maths"
        tab.shot("desktop-review-after")

        again = api.post("/v1/classify", json={"query": MISROUTED}).json()
        assert again["route"] == "maths"
        assert again["index_version"] != first.json()["index_version"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "review-fix.json").write_text(json.dumps({"browser_seconds": round(elapsed, 1)}))
    assert elapsed < 60, f"feedback to a better route took {elapsed:.0f} s in the browser"


def test_eval_action_holds_the_query_out_and_public_keys_see_no_review(
    open_ui: Callable[..., Tab], tmp_path: Path, routes_dir: Path, embedder: Embedder, start_service: ServiceFactory
) -> None:
    """Add to evaluation file appends a labelled line to evals/reviewed.jsonl (diff shown first);
    a public API key sees the Review tab without queues (they hold user texts)."""
    auth = AuthSettings(api_keys=[SecretStr("review-key")], admin_token=SecretStr("review-admin"))
    url = private_service(tmp_path, routes_dir, embedder, start_service, auth=auth)
    with httpx.Client(base_url=url, timeout=60, headers={"Authorization": "Bearer review-key"}) as api:
        api.post("/v1/classify", json={"query": "tell me a joke about cats"}, headers={"X-Request-ID": "cats-1"})
        assert api.post("/v1/feedback", json={"request_id": "cats-1", "correct": False}).status_code == 200
    tab = open_ui(url)
    page = tab.page
    page.fill("#api-key", "review-key")
    page.click("#key-form button[type=submit]")
    wait_ready(tab)
    tab.tab("review")
    page.wait_for_function("() => document.getElementById('review-off').innerText.includes('admin token')")
    assert page.locator("#review-items li").count() == 0

    page.click("#forget-key")
    page.fill("#api-key", "review-admin")
    page.click("#key-form button[type=submit]")
    wait_ready(tab)
    tab.tab("review")
    item = "#review-items li[data-request-id='cats-1']"
    page.wait_for_selector(item)
    page.select_option(f"{item} select.route-choice", "default")
    page.click(f"{item} .act-eval")
    page.wait_for_selector("#review-preview:not([hidden])")
    assert '"label": "oos"' in page.inner_text("#review-diff")
    page.click("#review-save")
    page.wait_for_function("() => document.getElementById('review-status').innerText.startsWith('Saved to')")
    lines = (tmp_path / "evals" / "reviewed.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"text": "tell me a joke about cats", "label": "oos"}]
    assert page.locator(item).count() == 0  # reviewed: out of the feedback queue
