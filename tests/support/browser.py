"""Playwright driving Debian's Chromium (``/usr/bin/chromium``, apt package ``chromium``):
the project never downloads browser builds (no ``playwright install``). Without that
binary the browser tests skip, naming the package."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("MAILER_TEST_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Screenshots of the browser tests (gitignored).
ARTIFACTS = Path(__file__).resolve().parents[2] / ".test-artifacts" / "console"


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is absent: install Debian's 'chromium' package "
            "(apt-get install chromium) to run the console browser tests"
        )


@contextmanager
def chromium_page() -> Iterator[Any]:
    """A fresh page in headless Chromium (skips without the binary)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_context().new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
