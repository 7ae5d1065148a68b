"""The web UI in a real browser (Debian's Chromium) against the real server over loopback.

One seeded data dir and one server for the module; each test gets a fresh browser context
(its own sessionStorage), so tests do not share state through the browser.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright
from ui_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    HOSTILE,
    TOKEN,
    LiveServer,
    Seeded,
    live_server,
    seed,
    seed_big_trace,
    seed_hostile,
)

from traceyard.capture.tracer import Tracer
from traceyard.store.base import TraceQuery

pytestmark = pytest.mark.browser

#: Where screenshots go: TRACEYARD_SCREENSHOTS (docs/screenshots to refresh the README's),
#: else the test's temporary directory.
SCREENSHOTS_ENV = "TRACEYARD_SCREENSHOTS"


class World:
    def __init__(self, tracer: Tracer, seeded: Seeded, server: LiveServer) -> None:
        self.tracer = tracer
        self.seeded = seeded
        self.server = server
        self.hostile_trace = ""
        self.hostile_generation = ""
        self.hostile_session = ""
        self.big_trace = ""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("ui") / "data"
    tracer = Tracer.create(data_dir=data_dir, start_server=False, worker_batch_timeout=0.02)
    seeded = seed(tracer)
    # Older than a day: the default views (and the README's screenshots) show the app's own
    # traces first; the tests below go and find these.
    day = 86_400 * 10**9
    hostile = seed_hostile(tracer, start=time.time_ns() - 2 * day)
    big = seed_big_trace(tracer, 5000, start=time.time_ns() - 3 * day)
    assert tracer.flush(30) == 0
    with live_server(tracer) as server:
        w = World(tracer, seeded, server)
        w.hostile_trace, w.hostile_generation, w.hostile_session = hostile
        w.big_trace = big
        yield w
    tracer.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class PageProbe:
    """Errors and dialogs a page produced; a test fails on any it did not expect."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("console", self._console)
        page.on("dialog", self._dialog)

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error" and "401" not in msg.text:
            self.errors.append(f"console: {msg.text}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme="dark")
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    probe = PageProbe(pg)
    pg.probe = probe  # type: ignore[attr-defined]
    yield pg
    context.close()
    assert not probe.dialogs, f"dialogs opened: {probe.dialogs}"
    assert not probe.errors, f"browser errors: {probe.errors}"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    target = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target


def open_view(page: Page, world: World, route: str) -> None:
    page.goto(world.server.url + route)


def rows(page: Page) -> Any:
    return page.locator(".traces-table tbody tr")


# --------------------------------------------------------------------------- the journey


def test_list_filter_open_trace_choose_generation(page: Page, world: World, shots: Path) -> None:
    seeded = world.seeded
    open_view(page, world, "#/traces")
    expect(rows(page).first).to_be_visible()
    page.screenshot(path=str(shots / "traces.png"))

    # "/" focuses the search; typing filters, and the filter lands in the URL.
    page.locator("body").press("/")
    expect(page.locator("[data-search]")).to_be_focused()
    page.keyboard.type("support-agent")
    expect(page).to_have_url(re.compile(r"text=support-agent"))
    expect(rows(page)).to_have_count(4)  # three turns of the session and the failed one

    # The filter panel: a user id narrows to the session's three turns.
    page.get_by_role("button", name="Filters").click()
    page.locator(".filter-panel input[name=user_id]").fill("alice@acme.io")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"user_id=alice%40acme.io"))
    expect(rows(page)).to_have_count(3)

    # A shared URL restores the same view.
    page.reload()
    expect(rows(page)).to_have_count(3)
    expect(page.locator(".chip", has_text="alice@acme.io")).to_be_visible()

    # Open the oldest turn (the scored one) and choose its first generation.
    page.locator(f'.trace-link[title="{seeded.chat_trace_id}"]').click()
    expect(page).to_have_url(re.compile(rf"#/traces/{seeded.chat_trace_id}$"))
    tree_row = page.locator(f'.tree-row[data-id="{seeded.generation_id}"]')
    tree_row.click()
    expect(page).to_have_url(re.compile(rf"obs={seeded.generation_id}"))

    generation = world.tracer.store.get_observation(seeded.generation_id)  # type: ignore[union-attr]
    assert generation is not None and generation.cost.get("total")
    detail = page.locator(".pane-detail")
    expect(detail.locator(".fact-tokens .fact-value")).to_have_text("578")
    expect(detail.locator(".fact-model .fact-value")).to_have_text("gpt-4o-mini")
    expect(detail.locator(".fact-ttft .fact-value")).to_have_text("350ms")
    usage = detail.locator(".usage-table")
    expect(usage.locator('tr[data-bucket="input"] td').nth(1)).to_have_text("412")
    expect(usage.locator('tr[data-bucket="cache_read"] td').nth(1)).to_have_text("128")
    expect(usage.locator('tr[data-bucket="total"] td').nth(1)).to_have_text("578")
    cost_text = usage.locator('tr[data-bucket="total"] td').nth(2).inner_text()
    assert cost_text.startswith("$") and float(cost_text[1:]) == pytest.approx(
        generation.cost["total"], rel=0.06
    )
    # The input is rendered as a conversation with roles; the output shows the tool call.
    expect(detail.locator(".io .role-system")).to_have_count(1)
    expect(detail.locator(".io .role-user")).to_contain_text("user")
    expect(detail.locator(".tool-call .tool-name")).to_have_text("search_docs")
    page.screenshot(path=str(shots / "trace.png"))

    # Keyboard: arrows move through the tree, and the URL follows.
    page.locator(".tree-scroll").focus()
    page.keyboard.press("ArrowDown")
    next_id = page.locator(".tree-row.selected").get_attribute("data-id")
    assert next_id and next_id != seeded.generation_id
    expect(page).to_have_url(re.compile(rf"obs={next_id}"))
    page.keyboard.press("ArrowUp")
    expect(page.locator(".tree-row.selected")).to_have_attribute("data-id", seeded.generation_id)

    # The deep link opens the same node in a new page.
    page.goto(world.server.url + f"#/traces/{seeded.chat_trace_id}?obs={seeded.generation_id}")
    page.reload()
    expect(page.locator(".tree-row.selected")).to_have_attribute("data-id", seeded.generation_id)


def test_error_trace_marks_the_failed_node(page: Page, world: World) -> None:
    open_view(page, world, f"#/traces/{world.seeded.error_trace_id}")
    failed = page.locator(".tree-row.has-error")
    expect(failed).to_have_count(1)
    expect(failed.locator(".lvl-error")).to_be_visible()
    failed.click()
    expect(page.locator(".callout-error")).to_contain_text("TimeoutError: docs index")


def test_new_traces_appear_live_and_pause_holds_them(page: Page, world: World) -> None:
    open_view(page, world, "#/traces")
    expect(page.locator(".live-btn.live")).to_be_visible()
    with world.tracer.span("live-arrival-1"):
        pass
    expect(page.locator(".trace-link", has_text="live-arrival-1")).to_be_visible()

    page.locator(".live-btn").click()
    expect(page.locator(".live-btn.paused")).to_be_visible()
    with world.tracer.span("live-arrival-2"):
        pass
    expect(page.locator(".new-pill")).to_have_text(re.compile(r"^1 new trace"))
    expect(page.locator(".trace-link", has_text="live-arrival-2")).to_have_count(0)
    page.locator(".new-pill").click()
    expect(page.locator(".trace-link", has_text="live-arrival-2")).to_be_visible()


def test_paging_is_stable_while_traces_arrive(page: Page, world: World) -> None:
    open_view(page, world, "#/traces?limit=25")
    expect(rows(page)).to_have_count(25)
    page.get_by_role("button", name="Next →").click()
    expect(page.locator(".pager")).to_contain_text("Page 2")
    second_page = [r.get_attribute("data-id") for r in rows(page).all()]
    assert second_page
    for i in range(3):
        with world.tracer.span(f"arrival-while-paging-{i}"):
            pass
    # Off the first page the arrivals are announced, not inserted...
    expect(page.locator(".new-pill")).to_have_text(re.compile(r"^3 new traces"))
    # ...and the same page, fetched again, holds the same traces (keyset cursor).
    page.get_by_title("Refresh").click()
    expect(rows(page)).to_have_count(len(second_page))
    assert [r.get_attribute("data-id") for r in rows(page).all()] == second_page
    expect(page.locator(".pager")).to_contain_text("Page 2")


def test_sorting_by_a_column_header(page: Page, world: World) -> None:
    open_view(page, world, "#/traces?name=rag-pipeline")
    expect(rows(page)).to_have_count(8)
    page.locator("th.sortable", has_text="Tokens").click()
    expect(page).to_have_url(re.compile(r"sort=tokens"))
    expect(page.locator("th.sorted")).to_contain_text("Tokens ↓")
    page.locator("th.sortable", has_text="Latency").click()
    page.locator("th.sortable", has_text="Latency").click()  # second click: ascending
    expect(page).to_have_url(re.compile(r"sort=latency&order=asc"))
    store = world.tracer.store
    assert store is not None
    expected = [
        t.id
        for t in sorted(
            store.list_traces(TraceQuery(name="rag-pipeline")).data,
            key=lambda t: (t.latency_ms or 0, t.id),
        )
    ]
    assert len({t.latency_ms for t in store.list_traces(TraceQuery(name="rag-pipeline")).data}) == 8
    expect(rows(page)).to_have_count(8)
    expect(rows(page).first).to_have_attribute("data-id", expected[0])
    assert [r.get_attribute("data-id") for r in rows(page).all()] == expected


def test_score_added_in_the_ui_is_stored(page: Page, world: World) -> None:
    seeded = world.seeded
    open_view(page, world, f"#/traces/{seeded.chat_trace_id}?obs={seeded.generation_id}")
    form = page.locator(".pane-detail .score-form")
    form.locator("input[name=score-name]").fill("ui-rating")
    form.locator("input[name=score-value]").fill("0.75")
    form.locator("input[name=score-comment]").fill("rated in the browser")
    form.get_by_role("button", name="Add score").click()
    expect(page.locator(".pane-detail .scores-table")).to_contain_text("ui-rating")

    form = page.locator(".pane-detail .score-form")
    form.locator("input[name=score-name]").fill("ui-ok")
    form.locator("select[name=score-type]").select_option("boolean")
    form.locator("select[name=score-value]").select_option("false")
    form.get_by_role("button", name="Add score").click()
    expect(page.locator(".pane-detail .scores-table")).to_contain_text("ui-ok")

    store = world.tracer.store
    assert store is not None
    scores = {s.name: s for s in store.list_scores(trace_id=seeded.chat_trace_id, limit=100).data}
    rating, ok = scores["ui-rating"], scores["ui-ok"]
    assert rating.value == 0.75 and rating.data_type.value == "numeric"
    assert rating.observation_id == seeded.generation_id
    assert rating.comment == "rated in the browser"
    assert ok.data_type.value == "boolean" and ok.value == 0.0


def test_session_is_a_conversation_of_turns(page: Page, world: World, shots: Path) -> None:
    open_view(page, world, "#/sessions")
    page.locator(".trace-link", has_text=world.seeded.session_id).click()
    turns = page.locator(".turn")
    expect(turns).to_have_count(3)
    expect(turns.nth(0)).to_contain_text("When am I billed each month?")
    expect(turns.nth(0)).to_contain_text("You're billed on the 1st of each month.")
    expect(turns.nth(1).locator(".turn-meta").nth(1)).to_have_text("2.40s")
    expect(page.locator(".trace-stats")).to_contain_text("Total latency7.20s")
    page.screenshot(path=str(shots / "session.png"))
    second = world.seeded.trace_ids[1]
    turns.nth(1).get_by_role("link", name="Open trace").click()
    expect(page).to_have_url(re.compile(rf"#/traces/{second}$"))


def test_dashboard_draws_its_charts(page: Page, world: World, shots: Path) -> None:
    open_view(page, world, "#/dashboard")
    expect(page.locator('[data-chart="traces"] svg rect.bar').first).to_be_attached()
    assert page.locator('[data-chart="traces"] svg rect.bar').count() >= 10
    expect(page.locator('[data-chart="latency"] svg path.line')).to_have_count(2)
    assert page.locator('[data-chart="tokens"] svg rect.bar').count() >= 10
    assert page.locator('[data-chart="cost"] svg rect.bar').count() >= 10
    assert page.locator('[data-chart="breakdown"] svg rect.bar').count() >= 10
    expect(page.locator(".chart-legend")).to_contain_text(["gpt-4o-mini"])
    expect(page.locator(".bar-list").first).to_contain_text("support-agent")
    page.set_viewport_size({"width": 1440, "height": 1240})  # the leaderboards too
    expect(page.locator(".bar-list").nth(3)).to_be_visible()
    page.screenshot(path=str(shots / "dashboard.png"))
    page.locator('[data-group="name"]').click()
    expect(page).to_have_url(re.compile(r"group_by=name"))
    expect(page.locator('[data-chart="breakdown"] .chart-legend')).to_contain_text("rag-pipeline")


def test_users_and_status_pages(page: Page, world: World) -> None:
    open_view(page, world, "#/users")
    alice = page.locator('tr[data-id="alice@acme.io"]')
    expect(alice).to_be_visible()
    alice.click()
    expect(page).to_have_url(re.compile(r"#/traces\?user_id=alice%40acme.io"))
    open_view(page, world, "#/status")
    expect(page.locator(".kpis")).to_contain_text("sqlite")
    expect(page.locator('tr[data-key="store.traces"]')).to_be_visible()


def test_a_5000_observation_trace_renders_only_visible_rows(page: Page, world: World) -> None:
    open_view(page, world, f"#/traces/{world.big_trace}")
    expect(page.locator(".trace-stats")).to_contain_text("5,000")
    expect(page.locator(".tree-row").first).to_be_visible()
    assert page.locator(".tree-row").count() < 120  # 5,001 nodes, a screenful in the DOM
    page.locator(".tree-scroll").focus()
    page.keyboard.press("End")
    expect(page.locator(".tree-row.selected .tree-name")).to_have_text(re.compile(r"-\d+-\d+$"))
    assert page.locator(".tree-row").count() < 120
    # The filter keeps the matches and their ancestors, even among 5,000 nodes.
    page.locator("body").press("/")
    expect(page.locator(".tree-filter")).to_be_focused()
    page.keyboard.type("retriever-7-1")
    expect(page.locator(".tree-count")).to_have_text("3 matches")
    expect(page.locator(".tree-row")).to_have_count(6)  # trace, agent, step-7 and 3 matches
    page.keyboard.press("Escape")
    expect(page.locator(".tree-count")).to_have_text("5,000 observations")
    # Collapsing the root leaves one row.
    page.keyboard.press("Home")
    page.keyboard.press("ArrowLeft")
    expect(page.locator(".tree-row")).to_have_count(1)


# --------------------------------------------------------------------------- safety


NO_INJECTION_JS = """() => {
  const bad = [];
  for (const el of document.querySelectorAll('*')) {
    for (const a of el.attributes) {
      if (a.name.startsWith('on')) bad.push(el.tagName + ' ' + a.name);
      const url = a.name === 'href' || a.name === 'src';
      if (url && /^\\s*javascript:/i.test(a.value)) bad.push(a.value);
    }
  }
  const view = document.getElementById('view');
  bad.push(...[...view.querySelectorAll('img, script, iframe, object, embed')].map(e => e.tagName));
  return {bad, xss: window.__xss || 0};
}"""


def assert_inert(page: Page) -> None:
    result = page.evaluate(NO_INJECTION_JS)
    assert result == {"bad": [], "xss": 0}


def test_hostile_strings_stay_inert_text(page: Page, world: World) -> None:
    open_view(page, world, "#/traces?text=evil")
    hostile_row = rows(page).first
    expect(hostile_row).to_contain_text(HOSTILE[0])
    expect(hostile_row.locator(".tag").first).to_have_text(HOSTILE[1])
    assert_inert(page)

    open_view(page, world, f"#/traces/{world.hostile_trace}")
    expect(page.locator(".trace-title")).to_have_text(f"evil {HOSTILE[0]}")
    expect(page.locator(".pane-detail")).to_contain_text(HOSTILE[2])  # metadata key/values
    assert_inert(page)

    page.locator(f'.tree-row[data-id="{world.hostile_generation}"]').click()
    detail = page.locator(".pane-detail")
    expect(detail.locator(".callout-error")).to_contain_text(f"boom {HOSTILE[0]}")
    expect(detail.locator(".fact-model .fact-value")).to_have_text(f"model {HOSTILE[0]}")
    expect(detail.locator(".tool-call .tool-name")).to_have_text(HOSTILE[0])
    expect(detail.locator(".scores-table")).to_contain_text(HOSTILE[2])
    expect(detail.locator(".params")).to_contain_text(HOSTILE[1])
    detail.get_by_role("button", name="JSON").first.click()
    expect(page.locator(".pane-detail .json").first).to_contain_text("onerror")
    assert_inert(page)

    open_view(page, world, "#/sessions")
    page.locator(".trace-link", has_text=HOSTILE[3]).click()
    expect(page.locator(".trace-title")).to_have_text(world.hostile_session)
    assert_inert(page)
    for route in ("#/users", "#/dashboard?range=7d", "#/status"):
        open_view(page, world, route)
        page.wait_for_load_state("networkidle")
        assert_inert(page)
        if route.startswith("#/dashboard"):  # a hostile model name in the chart legend
            legend = page.locator('[data-chart="breakdown"] .chart-legend')
            expect(legend).to_contain_text(f"model {HOSTILE[0]}")
    # Leave the page time to run anything an injected handler might have scheduled.
    page.evaluate("() => new Promise(r => setTimeout(r, 200))")
    assert_inert(page)


# --------------------------------------------------------------------------- prefix and auth


def test_under_a_path_prefix_with_auth(browser: Browser, world: World) -> None:
    with live_server(world.tracer, token=TOKEN, prefix="/traceyard/") as server:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.set_default_timeout(10_000)
        probe = PageProbe(page)
        paths: list[str] = []
        page.on("request", lambda r: paths.append(r.url))
        page.goto(server.url)

        # The first API call is refused; the UI asks for the token once.
        token_input = page.locator("#token-input")
        expect(token_input).to_be_visible()
        token_input.fill("not-the-token-" + "x" * 30)
        token_input.press("Enter")
        expect(page.locator(".modal .form-error")).to_contain_text("refused")
        page.locator("#token-input").fill(TOKEN)
        page.locator("#token-input").press("Enter")
        expect(rows(page).first).to_be_visible()
        assert page.evaluate("() => sessionStorage.getItem('traceyard.token')") == TOKEN

        # The live stream authenticates too (subprotocol) and works through the prefix.
        expect(page.locator(".live-btn.live")).to_be_visible()
        with world.tracer.span("arrival-behind-prefix"):
            pass
        expect(page.locator(".trace-link", has_text="arrival-behind-prefix")).to_be_visible()

        # Reloading keeps the token for the browser session: no second prompt.
        page.reload()
        expect(rows(page).first).to_be_visible()
        expect(page.locator("#token-input")).to_have_count(0)
        page.locator(".trace-link").first.click()
        expect(page.locator(".tree-row").first).to_be_visible()

        outside = [u for u in paths if not u.startswith(server.url)]
        assert not outside, f"requests outside the prefix: {outside}"
        context.close()
        assert not probe.dialogs and not probe.errors, (probe.dialogs, probe.errors)


def test_empty_store_shows_the_one_line_to_add(browser: Browser, tmp_path: Path) -> None:
    empty = Tracer.create(data_dir=tmp_path / "empty", start_server=False)
    try:
        with live_server(empty) as server:
            context = browser.new_context()
            page = context.new_page()
            page.goto(server.url)
            snippet = page.locator(".snippet pre")
            expect(snippet).to_contain_text("tracer = traceyard.Tracer.create()")
            expect(snippet).to_contain_text('config={"callbacks": [tracer.handler]}')
            context.close()
    finally:
        empty.stop()
