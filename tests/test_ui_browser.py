"""The playground in a real browser: the system's headless Chromium driven by Playwright, against
the real service on loopback. Every figure the page shows is checked against the API (or the
indexer's own eval) it comes from; any console error fails the test; each panel is saved as a
screenshot under test-artifacts/ui/.

Without Chromium these tests are skipped with the install command; with
ROUTER_TEST_REQUIRE_BROWSER=1 (set by .ci/run) a missing browser fails them instead.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from devkit.serving import ROOT, SHIPPED_EVALS, settings_for
from router_core import Embedder, load_routes, run_reindex
from router_core.store import EdgeStore
from service.security import AuthSettings
from service.settings import ServiceSettings
from tests.conftest import ServiceFactory
from tests.test_ui_api import indexer_eval_json

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def find_chromium() -> str | None:
    """The system Chromium (ROUTER_TEST_CHROMIUM names another binary), or None."""
    given = os.environ.get("ROUTER_TEST_CHROMIUM")
    if given is not None:
        return given if Path(given).is_file() else None
    return shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)


CHROMIUM = find_chromium()
INSTALL_HINT = (
    "Chromium is not installed, so the playground's browser tests are skipped; "
    "install it with: sudo apt-get update && sudo apt-get install -y chromium"
)
REQUIRED = os.environ.get("ROUTER_TEST_REQUIRE_BROWSER") == "1"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SEEDS = [  # README / bin/serve: the three seed queries and where they go
    ("How do I use async with Rust?", "coding"),
    ("What is 15% of 200?", "maths"),
    ("What's a good recipe for banana bread?", "default"),
]
# Typed once each for the keystroke-to-decision timing (texts no other test embeds).
TIMED = [
    "How can I read a CSV file in Rust without loading it all?",
    "what is the square root of 1764",
    "Do you offer a discount for annual billing on the team plan?",
    "Which identity providers does the product support for single sign-on?",
    "Can you prepare a proof of concept plan for a bank evaluating us?",
    "Who closed the most deals on the west coast team last month?",
    "my python list comprehension is slow, what should I use instead",
    "convert 72 degrees fahrenheit to celsius",
    "why was I charged twice on the last invoice",
    "does the dashboard export to PowerPoint",
    "what is the best hiking trail near Lisbon",
    "how many meetings did each rep book this week",
    "solve 3x - 7 = 11 for x",
    "We need a security questionnaire answered for a hospital prospect",
    "git rebase keeps failing with conflicts in lockfiles",
    "recommend a movie for a rainy sunday",
    "what does the enterprise tier cost per seat",
]


# -- the browser -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless system Chromium (a fresh profile per launch: Playwright makes a temporary one)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # bin/setup installs it with the test extras
        sync_playwright = None
    if CHROMIUM is None or sync_playwright is None:
        missing = INSTALL_HINT if CHROMIUM is None else "playwright is not installed: run bin/setup"
        if REQUIRED:
            pytest.fail(f"{missing} (ROUTER_TEST_REQUIRE_BROWSER=1: these tests must run here)")
        pytest.skip(missing)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            launched.close()


class Tab:
    """One page of the playground, with everything its console reported."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("request", lambda r: self.requests.append(r.url))

    def shot(self, name: str) -> Path:
        """A full-page screenshot kept as a test artefact."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def tab(self, name: str) -> None:
        """Select a panel by its tab and wait until it shows."""
        self.page.click(f"#tab-{name}")
        self.page.wait_for_selector(f"#panel-{name}:not([hidden])")

    def type_query(self, text: str) -> float:
        """Clear the query box, type `text` key by key, wait until its decision shows; the
        milliseconds from the last keystroke to the decision shown."""
        box = self.page.locator("#query")
        box.fill("")
        box.press_sequentially(text)
        self.page.wait_for_function(
            "q => { const d = document.getElementById('decision');"
            " return d.dataset.state === 'shown' && d.dataset.query === q; }",
            arg=text,
        )
        return float(
            self.page.evaluate("() => Number(document.getElementById('decision').dataset.shownAt) - window.__lastKey")
        )

    def neighbours(self) -> list[list[str]]:
        """The neighbour table's cells (rank, similarity, route, example) as shown."""
        return list(
            self.page.evaluate(
                "() => [...document.querySelectorAll('#neighbours tbody tr')]"
                ".map(tr => [...tr.cells].map(c => c.innerText.trim()))"
            )
        )

    def value(self, selector: str) -> float:
        """A figure's exact value (its data-value attribute)."""
        return float(self.page.get_attribute(selector, "data-value") or "nan")


@pytest.fixture
def open_ui(browser: Any) -> Iterator[Callable[..., Tab]]:
    """Open /ui of a service in a fresh browser context; no console error may occur."""
    opened: list[tuple[Any, Tab]] = []

    def open_(base_url: str, viewport: dict[str, int] = DESKTOP) -> Tab:
        context = browser.new_context(viewport=viewport)
        context.add_init_script(
            "document.addEventListener('keydown', () => { window.__lastKey = performance.now(); }, true);"
        )
        tab = Tab(context.new_page())
        opened.append((context, tab))
        tab.page.goto(f"{base_url}/ui")
        return tab

    yield open_
    errors = [e for _, tab in opened for e in tab.errors]
    for context, _ in opened:
        context.close()
    assert not errors, "\n".join(errors)


def wait_ready(tab: Tab) -> None:
    """The page has read the route table."""
    tab.page.wait_for_selector("#routes-list details", state="attached")


# -- try a query -------------------------------------------------------------------------------
def test_seed_queries_show_what_classify_decides(
    open_ui: Callable[..., Tab], shipped_url: str, client: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    """Typing each seed query shows /v1/classify's route, agent, score, reason and neighbours; the
    keystroke-to-decision time is measured (p50 printed)."""
    tab = open_ui(shipped_url)
    wait_ready(tab)
    for query, route in SEEDS:
        tab.type_query(query)
        expected = client.post("/v1/classify", json={"query": query, "explain": True}).json()
        assert expected["route"] == route
        page = tab.page
        assert page.inner_text("#decision-route") == expected["route"]
        assert page.inner_text("#decision-agent") == expected["agent"]
        assert page.get_attribute("#decision-reason", "data-reason") == expected["reason"]
        assert tab.value("#decision-score") == expected["score"]
        assert page.inner_text("#decision-score") == f"{expected['score']:.4f}"
        assert page.locator(".badge.fallback").count() == (1 if expected["fallback"] else 0)
        shown = tab.neighbours()
        wanted = [
            [str(i + 1), f"{n['similarity']:.4f}", n["route"], n["text"]] for i, n in enumerate(expected["neighbours"])
        ]
        assert shown == wanted
        votes = page.evaluate("() => [...document.querySelectorAll('#votes [data-route]')].map(r => r.dataset.route)")
        assert sorted(votes) == sorted(expected["votes"])
        if route == "coding":
            tab.shot("desktop-try")
    timings = [tab.type_query(q) for q in TIMED] + [tab.type_query(q) for q, _ in SEEDS]
    p50, p90 = statistics.median(timings), statistics.quantiles(timings, n=10)[-1]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "latency.json").write_text(
        json.dumps({"keystroke_to_decision_ms": {"p50": p50, "p90": p90, "samples": timings}}, indent=2)
    )
    with capsys.disabled():
        print(
            f"\nplayground: keystroke to decision shown, p50 {p50:.0f} ms, p90 {p90:.0f} ms over {len(timings)} "
            f"queries (150 ms of it the typing debounce)"
        )
    assert all(t > 0 for t in timings)


def test_conversation_mode_shows_the_deciding_turns(
    open_ui: Callable[..., Tab], shipped_url: str, client: httpx.Client
) -> None:
    """In conversation mode the page sends `messages` and shows the route, reason and the turns
    that decided, as /v1/classify returns them."""
    tab = open_ui(shipped_url)
    wait_ready(tab)
    page = tab.page
    page.check("input[name=mode][value=conversation]")
    messages = [
        {"role": "user", "content": "How do I use async with Rust?"},
        {"role": "assistant", "content": "Mark the function async and run it on an executor such as tokio."},
        {"role": "user", "content": "can you show me an example?"},
    ]
    page.fill("#turns li:nth-child(1) textarea", messages[0]["content"])
    for i, message in enumerate(messages[1:], start=2):
        page.click("#add-turn")
        assert page.input_value(f"#turns li:nth-child({i}) select") == message["role"]
        page.locator(f"#turns li:nth-child({i}) textarea").press_sequentially(message["content"])
    label = json.dumps(messages, separators=(",", ":"))
    page.wait_for_function(
        "q => { const d = document.getElementById('decision'); return d.dataset.state === 'shown' && d.dataset.query === q; }",
        arg=label,
    )
    expected = client.post("/v1/classify", json={"messages": messages, "explain": True}).json()
    assert len(expected["turns"]) > 1, "a follow-up with no domain words is decided by the conversation's turns"
    assert page.inner_text("#decision-route") == expected["route"]
    assert page.get_attribute("#decision-reason", "data-reason") == expected["reason"]
    shown = page.evaluate(
        "() => [...document.querySelectorAll('#decision-turns li')].map(li => Number(li.dataset.index))"
    )
    assert shown == [t["index"] for t in expected["turns"]]
    assert page.locator("#turns li.decided").count() == len(expected["turns"])
    tab.shot("desktop-conversation")


# -- routes and index --------------------------------------------------------------------------
def test_routes_panel_matches_the_routes_endpoint(
    open_ui: Callable[..., Tab], shipped_url: str, client: httpx.Client
) -> None:
    """Every route with its agent, example count and threshold; a route's examples are searchable
    and those nearer another route are marked, as GET /v1/routes/{name}/examples says."""
    routes = client.get("/v1/routes").json()
    tab = open_ui(shipped_url)
    wait_ready(tab)
    tab.tab("routes")
    page = tab.page
    cards = page.evaluate(
        "() => [...document.querySelectorAll('#routes-list details')]"
        ".map(d => [d.dataset.route, d.querySelector('.example-count').innerText, d.querySelector('summary').innerText])"
    )
    assert [c[0] for c in cards] == [r["name"] for r in routes["routes"]]
    model = routes["model"]
    shown = f"model {model['id']} · languages: {', '.join(model['languages'])} ({model['languages_note']})"
    assert page.inner_text("#live-model") == shown
    for (_, count, summary), route in zip(cards, routes["routes"], strict=True):
        assert int(count) == route["examples"]
        assert route["agent"]["name"] in summary and route["description"] in summary
        assert f"threshold {route['threshold'] if route['threshold'] is not None else routes['threshold']}" in summary
    examples = client.get("/v1/routes/coding/examples").json()
    card = "#routes-list details[data-route=coding]"
    page.click(f"{card} summary")
    page.wait_for_selector(f"{card} .examples li")
    items = page.locator(f"{card} .examples li")
    assert items.count() == len(examples["examples"])
    assert page.locator(f"{card} .examples li[data-nearer='1']").count() == examples["nearer_elsewhere"] > 0
    page.fill(f"{card} input[type=search]", "rust")
    wanted = sum("rust" in e["text"].lower() for e in examples["examples"])
    assert page.locator(f"{card} .examples li:not([hidden])").count() == wanted > 0
    page.fill(f"{card} input[type=search]", "")
    page.check(f"{card} input[type=checkbox]")
    visible = page.locator(f"{card} .examples li:not([hidden])")
    assert visible.count() == examples["nearer_elsewhere"]
    nearer = next(e for e in examples["examples"] if e["nearer"])
    assert nearer["nearer"]["text"] in visible.first.inner_text()
    tab.shot("desktop-routes")


def test_index_panel_matches_the_admin_endpoint(
    open_ui: Callable[..., Tab], shipped_url: str, client: httpx.Client
) -> None:
    """The live version, model, build time, example count and reload state of GET /admin/index;
    the re-index button shows (open loopback mode: admin endpoints are open)."""
    status = client.get("/admin/index").json()
    tab = open_ui(shipped_url)
    wait_ready(tab)
    tab.tab("index")
    page = tab.page
    page.wait_for_selector("#index-model")
    assert page.inner_text("#index-version") == status["version"]
    assert page.inner_text("#index-model") == status["model"]
    assert page.inner_text("#index-examples") == str(status["examples"])
    assert page.inner_text("#index-built").startswith(status["created_at"])
    assert page.inner_text("#index-routes") == str(len(status["route_table"]["routes"]))
    assert "following the live pointer" in page.inner_text("#index-reload")
    assert page.is_visible("#reindex")
    tab.shot("desktop-index")


# -- evaluation --------------------------------------------------------------------------------
def test_evaluation_panel_matches_indexer_eval(
    open_ui: Callable[..., Tab],
    shipped_url: str,
    shipped_settings: ServiceSettings,
    embedder: Embedder,
    tmp_path: Path,
) -> None:
    """Evaluating the shipped test file shows the accuracy, fallback recall and precision,
    confusion pairs and per-route rows of `python -m indexer eval` on the same index, and the
    curve; an uploaded file is evaluated too."""
    report = indexer_eval_json(shipped_settings, embedder, tmp_path)["report"]
    tab = open_ui(shipped_url)
    wait_ready(tab)
    tab.tab("eval")
    page = tab.page
    page.wait_for_selector("#eval-file option[value='shipped-test.jsonl']", state="attached")
    page.select_option("#eval-file", "shipped-test.jsonl")
    page.click("#eval-run")
    page.wait_for_selector("#eval-accuracy")
    for selector, key in (
        ("#eval-accuracy", "accuracy"),
        ("#eval-in-scope", "in_scope_accuracy"),
        ("#eval-fallback-recall", "fallback_recall"),
        ("#eval-fallback-precision", "fallback_precision"),
        ("#eval-queries", "queries"),
    ):
        assert tab.value(selector) == report[key], key
    assert page.inner_text("#eval-accuracy") == f"{100 * report['accuracy']:.1f}%"
    confusions = page.evaluate(
        "() => [...document.querySelectorAll('#eval-confusions tbody tr')].map(tr => [...tr.cells].slice(0, 3).map(c => c.innerText))"
    )
    assert confusions == [[c["gold"], c["predicted"], str(c["count"])] for c in report["confusions"]]
    assert page.locator("#eval-routes tbody tr").count() == len(report["per_route"]) + 1  # and the fallback
    assert page.evaluate("() => document.getElementById('eval-curve').naturalWidth") > 0
    tab.shot("desktop-eval")

    page.select_option("#eval-file", "")
    page.set_input_files("#eval-upload", str(SHIPPED_EVALS / "shipped-val.jsonl"))
    page.wait_for_function("() => document.getElementById('eval-text').value.length > 0")
    page.click("#eval-run")
    page.wait_for_function("() => document.getElementById('eval-status').innerText.includes('posted lines')")
    assert tab.value("#eval-queries") == 80


def test_evaluation_panel_shows_turn_types_of_a_conversations_file(
    open_ui: Callable[..., Tab],
    shipped_url: str,
    shipped_settings: ServiceSettings,
    embedder: Embedder,
    tmp_path: Path,
) -> None:
    """Evaluating the shipped conversations file shows the accuracy by kind of turn, for the
    router and the last message alone, the reasons and the misrouted turns of
    `python -m indexer eval` on the same file and index."""
    report = indexer_eval_json(shipped_settings, embedder, tmp_path, "shipped-conversations.jsonl")["report"]
    tab = open_ui(shipped_url)
    wait_ready(tab)
    tab.tab("eval")
    page = tab.page
    page.wait_for_selector("#eval-file option[value='shipped-conversations.jsonl']", state="attached")
    page.select_option("#eval-file", "shipped-conversations.jsonl")
    page.click("#eval-run")
    page.wait_for_selector("#eval-turn-types")
    rows = page.evaluate(
        "() => [...document.querySelectorAll('#eval-turn-types tbody tr')].map(tr => [...tr.cells].map(c => c.innerText))"
    )
    types = ("all", "first of domain", "follow-up", "switch")
    assert rows == [
        ["this router", *(f"{100 * report['scores'][t]:.1f}%" for t in types)],
        ["last message alone", *(f"{100 * report['last_message'][t]:.1f}%" for t in types)],
    ]
    headers = page.evaluate("() => [...document.querySelectorAll('#eval-turn-types thead th')].map(c => c.innerText)")
    assert headers[1:] == [f"{t} ({report['scores']['counts'][t]})" for t in types]
    assert tab.value("#eval-turns-all") == report["scores"]["all"]
    assert page.inner_text("#eval-reasons") == "reasons: " + ", ".join(f"{k} {v}" for k, v in report["reasons"].items())
    assert page.locator("#eval-misrouted > li").count() == len(report["misrouted"])
    assert "33 labelled turns" in page.inner_text("#eval-status")
    tab.shot("desktop-eval-conversations")


# -- auth --------------------------------------------------------------------------------------
API_KEY, ADMIN = "browser-key-1", "browser-admin-1"


def test_keyed_service_shows_nothing_without_a_key(
    open_ui: Callable[..., Tab], tmp_path: Path, routes_dir: Path, embedder: Embedder, start_service: ServiceFactory
) -> None:
    """With API keys the page asks for one and calls nothing; a public key shows routes but no
    admin controls; the admin token shows the re-index button, which publishes an edit."""
    data = tmp_path / "data"
    run_reindex(load_routes(routes_dir), EdgeStore(data), embedder)
    auth = AuthSettings(api_keys=[SecretStr(API_KEY)], admin_token=SecretStr(ADMIN))
    url = start_service(settings_for(routes_dir, data, auth=auth))
    tab = open_ui(url)
    page = tab.page
    page.wait_for_selector("#notice:not([hidden])")
    assert "requires an API key" in page.inner_text("#notice")
    page.locator("#query").press_sequentially("How do I use async with Rust?")
    page.wait_for_timeout(600)  # past the debounce: nothing may be asked or shown
    assert page.locator("#routes-list details").count() == 0
    assert page.get_attribute("#decision", "data-state") == "empty"
    assert page.inner_text("#live-version") == ""
    assert not [u for u in tab.requests if "/v1/" in u or "/admin/" in u], tab.requests
    tab.shot("keyed-without-key")

    page.focus("#api-key")
    page.keyboard.type(API_KEY)
    page.keyboard.press("Enter")
    wait_ready(tab)
    page.wait_for_selector("#decision[data-state=shown]")
    assert page.inner_text("#decision-route") == "coding"
    assert page.evaluate("() => sessionStorage.length") == 1
    tab.tab("index")
    assert "need the admin token" in page.inner_text("#index-view")
    assert not page.is_visible("#reindex")

    page.click("#forget-key")
    page.fill("#api-key", ADMIN)
    page.click("#key-form button[type=submit]")
    wait_ready(tab)
    page.wait_for_selector("#index-model")
    assert page.is_visible("#reindex")
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}) as c:
        before = c.get("/admin/index").json()["version"]
        (routes_dir / "maths.yaml").write_text(
            (routes_dir / "maths.yaml").read_text() + '  - "what is the cube root of 343"\n'
        )
        page.click("#reindex")
        page.wait_for_function("() => document.getElementById('reindex-result').innerText.startsWith('Published')")
        after = c.get("/admin/index").json()["version"]
    assert after != before
    page.wait_for_function("v => document.getElementById('index-version')?.innerText === v", arg=after)
    tab.shot("keyed-admin-index")


# -- accessibility and layout ------------------------------------------------------------------
def test_keyboard_labels_and_phone_width(open_ui: Callable[..., Tab], shipped_url: str) -> None:
    """Every control has a label; tabs move with the arrow keys; a query can be typed from the
    keyboard alone; at phone width no panel scrolls sideways (screenshots of each)."""
    tab = open_ui(shipped_url, PHONE)
    wait_ready(tab)
    page = tab.page
    unlabelled = page.evaluate(
        "() => [...document.querySelectorAll('input, select, textarea')]"
        ".filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.outerHTML)"
    )
    assert not unlabelled
    page.focus("#tab-try")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("() => document.activeElement.id") == "tab-routes"
    assert page.is_visible("#panel-routes") and not page.is_visible("#panel-try")
    page.keyboard.press("End")
    assert page.get_attribute("#tab-eval", "aria-selected") == "true"
    page.keyboard.press("Home")
    assert page.is_visible("#panel-try")
    for _ in range(8):  # from the tab list, Tab reaches the query box
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") == "query":
            break
    assert page.evaluate("() => document.activeElement.id") == "query"
    page.keyboard.type("What is 15% of 200?")
    page.wait_for_function("() => document.getElementById('decision').dataset.query === 'What is 15% of 200?'")
    assert page.inner_text("#decision-route") == "maths"

    def no_sideways_scroll() -> bool:
        return bool(page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"))

    assert no_sideways_scroll()
    tab.shot("phone-try")
    tab.tab("routes")
    page.click("#routes-list details[data-route=maths] summary")
    page.wait_for_selector("#routes-list details[data-route=maths] .examples li")
    assert no_sideways_scroll()
    tab.shot("phone-routes")
    tab.tab("index")
    page.wait_for_selector("#index-model")
    assert no_sideways_scroll()
    tab.shot("phone-index")
    tab.tab("eval")
    page.wait_for_selector("#eval-file option[value='shipped-test.jsonl']", state="attached")
    page.select_option("#eval-file", "shipped-test.jsonl")
    page.keyboard.press("Tab")
    page.click("#eval-run")
    page.wait_for_selector("#eval-accuracy")
    assert no_sideways_scroll()
    tab.shot("phone-eval")


# -- the API docs page -----------------------------------------------------------------------------
def test_the_swagger_page_renders_offline(browser: Any, shipped_url: str) -> None:
    """/schema/swagger in the browser with every request off this origin refused: Swagger UI
    renders every operation of the schema, nothing was asked of another origin, and the console
    reports no error (no CSP violation)."""
    context = browser.new_context(viewport=DESKTOP)
    foreign: list[str] = []

    def only_this_origin(route: Any) -> None:
        if route.request.url.startswith(shipped_url):
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    context.route("**/*", only_this_origin)
    tab = Tab(context.new_page())
    try:
        tab.page.goto(f"{shipped_url}/schema/swagger")
        tab.page.wait_for_selector(".opblock-summary-path", timeout=30_000)
        shown = set(tab.page.eval_on_selector_all(".opblock-summary-path", "els => els.map(e => e.dataset.path)"))
        paths = set(httpx.get(f"{shipped_url}/schema/openapi.json").json()["paths"])
        assert shown == paths
        tab.shot("swagger")
    finally:
        context.close()
    assert not foreign, foreign
    assert not tab.errors, "\n".join(tab.errors)
