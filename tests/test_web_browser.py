"""The web page in a real headless Chromium (the system's `chromium`, driven by Playwright):
a question typed returns the expected passage; the passage opens at its span, highlighted;
a file added to the folder appears on Folders without a reload; a skipped PDF shows its
reason; markup in a document is shown as text and runs nothing; without the token the page
asks for it and shows no data; a wrong Host gets nothing.

Each view is saved as a PNG in $DOCSYNC_SCREENSHOTS (default: docsync-screenshots in the
temporary folder, which CI does not keep), for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from docsync.plugin.encoder import Encoder
from docsync.plugin.search import Searcher
from docsync.worker.serve import Api, Endpoints, listen_tcp
from docsync.worker.web.views import WebViews
from tests.web_host import HOSTILE, TOKEN, Served, serving_daemon

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)"
)
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
expect = playwright_api.expect
SHOTS = Path(
    os.environ.get("DOCSYNC_SCREENSHOTS") or Path(tempfile.gettempdir()) / "docsync-screenshots"
)
WAIT_MS = 60_000  # what one condition may take on a loaded machine; met, it returns at once
expect.set_options(timeout=WAIT_MS)
QUESTION = "serversocket bind listen"  # words of one passage of sockets.rst (keyword mode)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, tiny_encoder: Encoder
) -> Iterator[Served]:
    with serving_daemon(tmp_path_factory.mktemp("web-browser"), tiny_model_dir, tiny_encoder) as s:
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        # Names resolved to this machine, so that a page can be asked for under a wrong Host.
        args = ["--host-resolver-rules=MAP evil.example 127.0.0.1"]
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield chromium
        chromium.close()


class Tab:
    """One page, with the dialogs it opened and the errors its console printed."""

    def __init__(self, browser: Any, base: str) -> None:
        self.context = browser.new_context(viewport={"width": 1100, "height": 760})
        self.context.set_default_timeout(WAIT_MS)
        self.page = self.context.new_page()
        self.base = base
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("console", self._console)
        self.page.on("pageerror", self._crash)
        self.crashes: list[str] = []  # the script failed: every wait would time out

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _crash(self, error: Any) -> None:
        self.crashes.append(str(error))
        self.errors.append(str(error))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def go(self, path: str) -> Any:
        response = self.page.goto(self.base + path)
        assert self.crashes == [], self.crashes  # at once, not after a minute's timeout
        return response

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def tab(browser: Any, served: Served) -> Iterator[Tab]:
    """A tab that was given the token once, through the page's own prompt."""
    tab = Tab(browser, f"http://127.0.0.1:{served.port}")
    tab.go("/")
    tab.page.fill("#token", TOKEN)
    tab.page.click("#token-form button")
    expect(tab.page.locator("#store")).to_contain_text("docsync")
    tab.errors.clear()  # the one 401 that made it ask
    yield tab
    tab.context.close()


@pytest.fixture(autouse=True)
def clean_console(request: pytest.FixtureRequest) -> Iterator[None]:
    """No test leaves a script error, a refused resource (CSP) or a dialog behind."""
    if "tab" not in request.fixturenames:
        yield
        return
    tab: Tab = request.getfixturevalue("tab")
    tab.errors.clear()
    yield
    assert tab.errors == [] and tab.dialogs == []


def search(tab: Tab, question: str) -> Any:
    tab.go("/")
    tab.page.fill("#q", question)
    tab.page.select_option("#mode", "keyword")
    tab.page.press("#q", "Enter")
    first = tab.page.locator(".hit").first
    expect(first).to_be_visible()
    return first


def test_a_typed_question_returns_the_expected_passage(tab: Tab) -> None:
    first = search(tab, QUESTION)
    expect(first.locator(".hit-link")).to_have_text("sockets.rst")
    expect(first.locator(".passage")).to_contain_text("serversocket.bind")
    expect(first.locator(".section")).to_contain_text("Socket Programming HOWTO")
    assert tab.page.locator(".passage mark").first.inner_text().strip()
    assert "q=serversocket" in tab.page.url and "mode=keyword" in tab.page.url  # shareable
    tab.shot("search")


def test_the_url_opens_with_its_results(tab: Tab) -> None:
    tab.go("/?q=serversocket+bind+listen&mode=keyword")
    expect(tab.page.locator(".hit").first.locator(".hit-link")).to_have_text("sockets.rst")
    expect(tab.page.locator("#q")).to_have_value(QUESTION)


def test_a_hit_opens_the_document_at_its_span_highlighted(tab: Tab) -> None:
    first = search(tab, QUESTION)
    matched = first.locator(".passage mark").inner_text()
    first.locator(".hit-link").click()
    span = tab.page.locator("#doc-text mark#span")
    expect(span).to_be_visible()
    assert span.inner_text() == matched
    expect(tab.page.locator("#doc-where")).to_contain_text("Socket Programming HOWTO")
    expect(span).to_be_in_viewport()  # scrolled to
    tab.shot("read")
    tab.page.click("#doc-next")  # the neighbouring passage, highlighted in turn
    expect(span).not_to_have_text(matched)
    tab.page.go_back()
    expect(span).to_have_text(matched)


def test_a_pdf_hit_names_its_page_and_opens_there(tab: Tab) -> None:
    first = search(tab, "asyEngine executable chmod")
    expect(first.locator(".hit-link")).to_have_text("texshop.pdf")
    expect(first.locator(".page")).to_have_text(re.compile(r"^pp?\. (1–)?2$"))
    first.locator(".hit-link").click()
    expect(tab.page.locator("#doc-where")).to_contain_text(re.compile(r"pp?\. (1–)?2 ·"))
    expect(tab.page.locator("#doc-text mark#span")).to_contain_text("chmod +x asyEngine.engine")
    tab.shot("read-pdf")


def test_markup_in_a_document_is_shown_as_text_and_runs_nothing(tab: Tab) -> None:
    first = search(tab, "alert script escaping")
    expect(first.locator(".hit-link")).to_have_text("escaping.rst")
    expect(first.locator(".passage")).to_contain_text("<script>alert(1)</script>")
    expect(first.locator(".passage")).to_contain_text('<img src=x onerror="alert(2)">')
    assert tab.page.locator("#hits script, #hits img, #hits b").count() == 0
    tab.shot("escaped-search")
    first.locator(".hit-link").click()
    expect(tab.page.locator("#doc-text")).to_contain_text("<script>alert(1)</script>")
    # the whole document, as text, and nothing else (no "null" from an empty part)
    expect(tab.page.locator("#doc-text")).to_have_text(HOSTILE.rstrip("\n"))
    assert tab.page.locator("#doc-text script, #doc-text img").count() == 0
    tab.shot("escaped-read")
    assert tab.dialogs == []


def test_folders_show_a_skipped_pdf_and_a_new_file_without_reload(tab: Tab, served: Served) -> None:
    tab.go("/?view=folders")
    row = tab.page.locator("tr", has_text="locked.pdf")
    expect(row.locator(".reason")).to_have_text("encrypted")
    expect(row).to_contain_text("the PDF needs a password")
    expect(tab.page.locator("#not-included")).to_contain_text(".xyz")
    files = tab.page.locator(".stat.files b")
    expect(files).to_have_text("3")
    tab.shot("folders")
    tab.page.evaluate("window.notReloaded = true")
    (served.docs / "added.md").write_text("# Added\n\nA file added while the page was open.\n")
    expect(files).to_have_text("4")
    assert tab.page.evaluate("window.notReloaded === true")
    tab.page.fill("#aside-filter", "nothing-matches")
    expect(row).to_have_count(0)


def test_health_shows_lag_errors_profile_and_store(tab: Tab, served: Served) -> None:
    (served.docs / "lag.md").write_text("# Lag\n\nOne more change, so that a lag is measured.\n")
    tab.go("/?view=health")
    expect(tab.page.locator("#lag-p50")).not_to_have_text("–")
    expect(tab.page.locator("#lag-chart rect").first).to_be_attached()
    expect(tab.page.locator("#errors")).to_contain_text("unreadable")
    expect(tab.page.locator("#profile")).to_contain_text("dimension")
    expect(tab.page.locator("#store-info")).to_contain_text("embedded")
    tab.shot("health")
    tab.page.emulate_media(color_scheme="dark")
    tab.shot("health-dark")
    tab.page.emulate_media(color_scheme="light")


def test_without_the_token_the_page_asks_and_shows_no_data(browser: Any, served: Served) -> None:
    stranger = Tab(browser, f"http://127.0.0.1:{served.port}")
    try:
        stranger.go("/?q=serversocket")
        expect(stranger.page.locator("#token-form")).to_be_visible()
        assert stranger.page.locator(".hit").count() == 0
        assert stranger.page.locator("#store").inner_text() == ""
        assert stranger.page.locator("#view-search").is_hidden()
        stranger.shot("token")
        stranger.page.fill("#token", "not-the-token")
        stranger.page.click("#token-form button")
        expect(stranger.page.locator("#notice")).to_have_text("That token was refused.")
        assert stranger.page.locator(".hit").count() == 0
    finally:
        stranger.context.close()


def test_a_wrong_host_gets_nothing(browser: Any, served: Served, tiny_encoder: Encoder) -> None:
    """With no token the endpoint checks Host (a token answers any Host: a rebinding page
    cannot know it): a page reached under another name gets a refusal, not the page."""
    store = served.daemon.store  # read beside the daemon, as its own endpoint does
    api = Api(
        searcher=Searcher(store, tiny_encoder),
        healthy=lambda: True,
        ready=lambda: True,
        metrics=CollectorRegistry(),
        status=lambda: {},
        web=WebViews(store),
    )
    tcp = listen_tcp("127.0.0.1", 0)
    endpoints = Endpoints(api, socket_path=None, tcp=tcp)
    visitor = Tab(browser, f"http://evil.example:{tcp.server_address[1]}")
    try:
        response = visitor.go("/")
        assert response.status == 403
        assert visitor.page.locator("#q").count() == 0
        assert "not a name of this endpoint" in visitor.page.content()
        visitor.shot("wrong-host")
        local = Tab(browser, f"http://localhost:{tcp.server_address[1]}")
        assert local.go("/").status == 200
        local.context.close()
    finally:
        visitor.context.close()
        endpoints.close()
        tcp.server_close()
