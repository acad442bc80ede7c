"""Browser fixtures: the system Chromium (Debian's `chromium`) driven by Playwright against a real server.

No browser is ever downloaded: Playwright launches /usr/bin/chromium. Chromium's background services (updates,
sync, safe browsing) would dial out of this closed network and stall, so they are switched off.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tailor.auth.keys import KeyStore
from tailor.settings import Settings
from tests.api.conftest import ServerProcess, server, server_factory  # noqa: F401 - fixtures

CHROMIUM = os.environ.get("TAILOR_CHROMIUM", "/usr/bin/chromium")
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
# `make screenshots` points this at docs/screenshots (the pictures README shows); a plain test run writes them
# under the test's temp dir, so `make test` leaves the work tree as it found it.
SCREENSHOTS_ENV = "TAILOR_SCREENSHOTS_DIR"
VIEWPORT = {"width": 1180, "height": 820}


# Package scope: Playwright's sync API keeps an event loop running in the main thread while it lives, and
# later tests (the batcher's asyncio.run) need that thread free once the console tests are done.
@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: `make chromium` installs Debian's chromium"
    with sync_playwright() as pw:
        # Playwright gives each launch a fresh temporary user-data-dir, removed on close.
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@dataclass
class Console:
    url: str
    page: object  # playwright.sync_api.Page
    token: str
    scratch: Path  # where screenshots go unless TAILOR_SCREENSHOTS_DIR says otherwise

    def go(self, hash_path: str) -> None:
        self.page.goto(f"{self.url}/console/#{hash_path}")

    def shot(self, name: str) -> Path:
        """A screenshot README shows: viewport-sized, so each PNG stays small (~100 kB)."""
        folder = Path(os.environ.get(SCREENSHOTS_ENV) or self.scratch)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        self.page.screenshot(path=str(path))
        assert path.stat().st_size > 10_000, f"{path} looks empty"
        return path


def token_for(settings: Settings, key: str) -> str:
    return KeyStore(settings).issue_token(key)[0]


def sign_in(page: object, url: str, token: str) -> None:
    page.goto(f"{url}/console/")
    page.fill("#token", token)
    page.click("#signin button[type=submit]")


@pytest.fixture
def new_page(browser: object) -> Iterator[Callable[[], object]]:
    contexts: list[object] = []

    def make() -> object:
        ctx = browser.new_context(viewport=VIEWPORT)
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(15_000)
        return page

    yield make
    for ctx in contexts:
        ctx.close()


@pytest.fixture
def console(
    tmp_path: Path,
    settings: Settings,
    server: ServerProcess,  # noqa: F811 - the fixture imported above
    admin_credentials: object,
    new_page: Callable[[], object],
) -> Console:
    """A page signed in to a fresh server with the admin key's bearer token."""
    token = token_for(settings, admin_credentials.access_key_id)
    page = new_page()
    sign_in(page, server.url, token)
    page.wait_for_selector("#jobs")
    return Console(server.url, page, token, tmp_path / "screenshots")
