"""Prompts in the web UI, in a real browser (Debian's Chromium) against the real server: the
list, a prompt's versions with the traces of each, and the links between prompts and traces."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from ui_support import CHROMIUM, CHROMIUM_ARGS, HOSTILE, MS, LiveServer, _obs, live_server

from traceyard.capture.tracer import Tracer

pytestmark = pytest.mark.browser

NAME = "support/answer"  # a folder-style name: the "/" must survive URLs both ways
CHAT_SYSTEM = "You answer questions for Acme Cloud support."


class World:
    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.v1_traces: list[str] = []
        self.v2_traces: list[str] = []
        self.v1_generation = ""


def _turn(tracer: Tracer, start: int, name: str, version: int) -> tuple[str, str]:
    """A trace whose generation used prompt ``NAME`` at ``version``: (trace id, generation id)."""
    root = _obs(tracer, name, "chain", start, 900, input={"question": "When am I billed?"})
    root.update_trace(user_id="alice@acme.io")
    generation = _obs(
        tracer,
        "ChatOpenAI",
        "generation",
        start + 20 * MS,
        700,
        parent=root,
        model="gpt-4o-mini",
        usage={"input": 120, "output": 30},
        prompt_name=NAME,
        prompt_version=version,
        output="On the 1st of each month.",
    )
    return root.trace_id, generation.id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("ui-prompts") / "data"
    tracer = Tracer.create(data_dir=data_dir, start_server=False, worker_batch_timeout=0.02)
    store = tracer.store
    assert store is not None
    store.save_prompt(
        "default",
        NAME,
        "Answer {{question}} in two sentences.\nCite the docs.",
        labels=["production"],
        config={"temperature": 0.2, "model": "gpt-4o-mini"},
        commit_message="first version",
    )
    store.save_prompt(
        "default",
        NAME,
        [{"role": "system", "content": CHAT_SYSTEM}, {"role": "user", "content": "{{question}}"}],
        type="chat",
        labels=["staging"],
        commit_message="as a chat",
    )
    # Hostile strings in a prompt's name, content, labels and config stay text.
    store.save_prompt(
        "default", f"evil {HOSTILE[0]}", HOSTILE[1], labels=[HOSTILE[2]], config={HOSTILE[3]: 1}
    )
    w = None
    now = time.time_ns()
    v1 = [_turn(tracer, now - (10 - i) * 60_000 * MS, f"answer-v1-{i}", 1) for i in range(2)]
    v2 = [_turn(tracer, now - 2 * 60_000 * MS, "answer-v2", 2)]
    _obs(tracer, "no-prompt", "chain", now - 60_000 * MS, 100)
    assert tracer.flush(30) == 0
    with live_server(tracer) as server:
        w = World(server)
        w.v1_traces = [t for t, _ in v1]
        w.v2_traces = [t for t, _ in v2]
        w.v1_generation = v1[0][1]
        yield w
    tracer.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme="dark")
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    pg.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
    pg.errors = errors  # type: ignore[attr-defined]
    yield pg
    context.close()
    assert not errors, f"browser errors: {errors}"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    target = Path(os.environ.get("TRACEYARD_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target


def version_rows(page: Page) -> object:
    return page.locator(".version-traces tbody tr")


def test_prompt_versions_with_their_traces_and_back(page: Page, world: World, shots: Path) -> None:
    page.goto(world.server.url + "#/traces")
    page.locator('#nav a[data-section="prompts"]').click()
    expect(page).to_have_url(re.compile(r"#/prompts$"))
    row = page.locator(f'.prompts-table tr[data-name="{NAME}"]')
    expect(row).to_contain_text("v2")
    expect(row).to_contain_text("production → v1")
    expect(row.locator("td").nth(5)).to_have_text("3")  # traces over both versions

    # The prompt's page: both versions, the newest chosen, rendered as a conversation.
    row.locator("a").click()
    expect(page).to_have_url(re.compile(r"#/prompts/support%2Fanswer"))
    items = page.locator(".version-item")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_contain_text("v2")
    expect(items.nth(0)).to_contain_text("staging")
    expect(items.nth(1)).to_contain_text("production")
    expect(page.locator(".version-item.active")).to_have_attribute("data-version", "2")
    detail = page.locator(".version-detail")
    expect(detail.locator(".conversation .msg-system")).to_contain_text(CHAT_SYSTEM)
    expect(version_rows(page)).to_have_count(1)
    expect(version_rows(page).first).to_have_attribute("data-id", world.v2_traces[0])

    # v1: text with its variable marked, its config, its two traces; the URL names it.
    items.nth(1).click()
    expect(page).to_have_url(re.compile(r"version=1"))
    expect(detail.locator(".prompt-text")).to_contain_text("Cite the docs.")
    expect(detail.locator(".prompt-var")).to_have_text("{{question}}")
    expect(detail).to_contain_text("temperature")
    expect(version_rows(page)).to_have_count(2)
    shown = {version_rows(page).nth(i).get_attribute("data-id") for i in range(2)}
    assert shown == set(world.v1_traces)
    page.screenshot(path=str(shots / "prompt.png"))

    # Keyboard: arrows move through the versions, and the URL follows.
    page.locator(".version-list").focus()
    page.keyboard.press("ArrowUp")
    expect(page.locator(".version-item.active")).to_have_attribute("data-version", "2")
    expect(page).to_have_url(re.compile(r"version=2"))
    page.keyboard.press("ArrowDown")
    expect(version_rows(page)).to_have_count(2)

    # A deep link restores the chosen version.
    page.reload()
    expect(page.locator(".version-item.active")).to_have_attribute("data-version", "1")

    # The whole list of a version's traces is the Traces explorer, filtered.
    page.get_by_role("link", name="Open in the Traces list").click()
    expect(page).to_have_url(re.compile(r"#/traces\?.*prompt_name=support%2Fanswer"))
    expect(page.locator(".chip", has_text=NAME)).to_be_visible()
    expect(page.locator(".traces-table tbody tr")).to_have_count(2)
    page.go_back()

    # Follow a trace, choose its generation, and go back to the prompt version it used.
    trace_id = world.v1_traces[0]
    page.locator(f'.version-traces .trace-link[title="{trace_id}"]').click()
    expect(page).to_have_url(re.compile(rf"#/traces/{trace_id}$"))
    page.locator(f'.tree-row[data-id="{world.v1_generation}"]').click()
    prompt_link = page.locator(".pane-detail .fact-prompt a")
    expect(prompt_link).to_have_text(f"{NAME} v1")
    prompt_link.click()
    expect(page).to_have_url(re.compile(r"#/prompts/support%2Fanswer\?version=1"))
    expect(page.locator(".version-item.active")).to_have_attribute("data-version", "1")
    expect(version_rows(page)).to_have_count(2)


def test_hostile_prompt_stays_inert_and_a_missing_prompt_says_so(page: Page, world: World) -> None:
    page.goto(world.server.url + "#/prompts")
    evil = page.locator(".prompts-table tbody tr", has_text="evil")
    expect(evil).to_contain_text(HOSTILE[0])  # shown as text
    evil.locator("a").click()
    expect(page.locator(".version-detail .prompt-text")).to_have_text(HOSTILE[1])
    expect(page.locator(".version-item .label-badge").first).to_have_text(HOSTILE[2])
    expect(page.locator(".version-detail")).to_contain_text("<svg onload=")  # a config key
    assert page.evaluate("window.__xss") is None
    assert (
        page.locator(
            ".version-detail img, .version-detail script, .version-detail svg[onload]"
        ).count()
        == 0
    )
    expect(page.locator(".version-traces")).to_contain_text("No trace has used v1 yet.")

    page.goto(world.server.url + "#/prompts/nope")
    expect(page.locator(".version-detail")).to_contain_text("No prompt nope in project default.")
    errors: list[str] = page.errors  # type: ignore[attr-defined]
    assert [e for e in errors if "404" in e], "the browser logs the API's 404"
    errors[:] = [e for e in errors if "404" not in e]
