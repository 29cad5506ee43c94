"""Headless Chromium (Debian's, never a downloaded one) driving the live test server.

One browser per session keeps the suite fast; each test gets a fresh context (cookies, storage).
"""

import os
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread, which Django takes for async context.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
DESKTOP = {"width": 1280, "height": 720}
TABLET = {"width": 800, "height": 1100}


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    # Reduced motion: no CSS transitions, so screenshots and assertions see settled states.
    context = browser.new_context(
        viewport=DESKTOP, base_url=live_server.url, reduced_motion="reduce"
    )
    page = context.new_page()
    page.set_default_timeout(8000)
    # A script error, or anything the Content-Security-Policy refused (an inline style htmx
    # set, say), fails the test: both show only in the console otherwise.
    faults: list[str] = []
    page.on("pageerror", lambda error: faults.append(f"uncaught: {error}"))
    page.on(
        "console",
        lambda message: (
            faults.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    yield page
    context.close()
    assert not faults, "\n".join(faults)


def sign_in(page, username: str, password: str = "pw") -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")


def snap(page, name: str, *, tablet: bool = False) -> None:
    """Save a screenshot under screenshots/ when ARBITER_SCREENSHOTS=1 (optionally also at
    tablet width, restoring the desktop size afterwards)."""
    if os.environ.get("ARBITER_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}-1280.png")
    if tablet:
        page.set_viewport_size(TABLET)
        page.screenshot(path=SCREENSHOTS / f"{name}-800.png", full_page=True)
        page.set_viewport_size(DESKTOP)
