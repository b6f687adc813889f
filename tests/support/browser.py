"""The browser tests' harness: Debian's Chromium driven by Playwright (never a browser
download), the hub served by uvicorn on a loopback port and seeded through its API, and
`Tab`, a browser context whose `check` every page gets (axe-core: no serious or critical
violations; 320 px: no sideways scroll; no Content-Security-Policy breach; screenshots
into test-artefacts/web/). The fixtures `chromium_path`, `browser` and `live_hub` are
imported by name into each browser test module.

Where Chromium or Playwright is missing the tests skip, except under CI (`CI=true`),
where they fail.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from hub.api.app import create_app
from hub.settings import Settings
from tests.support.api import embedded, running_api
from tests.support.broker import free_port
from tests.support.web import Seeded, seed

CHROMIUM = Path(os.environ.get("HUB_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTEFACTS = Path(__file__).resolve().parents[2] / "test-artefacts" / "web"
WIDE, NARROW = {"width": 1024, "height": 900}, {"width": 320, "height": 800}
WIDER_THAN_THEIR_BOX = """() => [...document.querySelectorAll('body *')]
    .filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX == 'visible')
    .slice(0, 8).map(e => `${e.tagName}.${e.className} ${e.scrollWidth}/${e.clientWidth}`)"""
"""What makes a page scroll sideways: the elements whose content overflows them."""

IN_CI = os.environ.get("CI") == "true"
if IN_CI:  # a missing package is an error in CI, never a silent skip
    import axe_playwright_python.sync_playwright as axe_sync
    import playwright.sync_api as playwright_sync
else:
    playwright_sync = pytest.importorskip("playwright.sync_api")
    axe_sync = pytest.importorskip("axe_playwright_python.sync_playwright")


@pytest.fixture(scope="module")
def chromium_path() -> Path:
    if not CHROMIUM.is_file():
        message = f"{CHROMIUM} is missing: scripts/test installs Debian's chromium"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@dataclass
class LiveHub:
    url: str
    seeded: Seeded


def _seed(settings: Settings) -> Seeded:
    """Seed through the API in-process, on a thread of its own: Playwright's sync API
    keeps an event loop running on the test's thread."""

    async def go() -> Seeded:
        async with running_api(settings) as api:
            return await seed(api)

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result(timeout=120)


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """The hub of `settings` on a loopback port (uvicorn in a thread); its address."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="hub-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:  # uvicorn sets it once the socket listens and lifespan ran
        assert thread.is_alive(), "uvicorn exited before it started"
        assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def live_hub(tmp_path: Path) -> Iterator[LiveHub]:
    """The hub served, seeded through its API first."""
    settings = embedded(tmp_path)
    seeded = _seed(settings)
    with serving(settings) as url:
        yield LiveHub(url, seeded)


@pytest.fixture
def browser(chromium_path: Path) -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        the_browser = p.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        try:
            yield the_browser
        finally:
            the_browser.close()


class Tab:
    """One signed-in (or not) browser context and page, with the checks every page gets."""

    def __init__(self, browser: Any, url: str, who: str) -> None:
        self.url = url
        self.who = who
        self.context = browser.new_context(viewport=WIDE)
        self.page = self.context.new_page()
        self.csp_breaches: list[str] = []
        self.page.on("console", self._console)
        self.axe = axe_sync.Axe()
        ARTEFACTS.mkdir(parents=True, exist_ok=True)

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            self.csp_breaches.append(message.text)

    def goto(self, path: str) -> Any:
        response = self.page.goto(self.url + path)
        assert response is not None
        return response

    def sign_in(self, credential: str) -> None:
        self.goto("/sign-in")
        self.page.get_by_label("API key or invitation code").fill(credential)
        with self.page.expect_navigation():
            self.page.get_by_role("button", name="Sign in").click()

    def check(self, name: str) -> None:
        """axe (no serious or critical violations), 320 px (no horizontal scroll), CSP,
        and a screenshot at each width."""
        page = self.page
        page.wait_for_load_state("load")
        shot = f"{self.who}-{name}"
        page.screenshot(path=str(ARTEFACTS / f"{shot}.png"), full_page=True)
        results = self.axe.run(page)
        bad = [
            (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert not bad, (name, bad)
        page.set_viewport_size(NARROW)
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        wide = page.evaluate(WIDER_THAN_THEIR_BOX)
        assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at 320px: {wide}"
        page.screenshot(path=str(ARTEFACTS / f"{shot}-320.png"), full_page=True)
        page.set_viewport_size(WIDE)
        assert not self.csp_breaches, (name, self.csp_breaches)

    def close(self) -> None:
        self.context.close()


def text_of(page: Any, test_id: str) -> str:
    return str(page.get_by_test_id(test_id).inner_text())
