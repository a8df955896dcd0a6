"""Headless Chromium for the browser tests: Debian's ``chromium`` driven by Playwright.

Playwright never downloads a browser here: it drives the system executable
(``/usr/bin/chromium``, or ``IMGPRO_TEST_CHROMIUM``). Without it (or without the ``playwright``
package) the tests skip with the reason, except under ``CI=true``, where ``.ci/run`` has
installed Chromium and a missing browser must fail the run instead of hiding it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("IMGPRO_TEST_ARTIFACTS")
                 or ROOT / "tests" / "artifacts" / "browser")
"""Where screenshots go: ``IMGPRO_TEST_ARTIFACTS`` (a CI artifact folder, say), else
tests/artifacts/browser."""


def chromium_path() -> str | None:
    wanted = os.environ.get("IMGPRO_TEST_CHROMIUM")
    if wanted:
        return wanted if Path(wanted).exists() else None
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; under CI=true .ci/run installs Chromium, so this is an error")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per module; each test opens its own contexts.

    Module scope, not session: while Playwright's sync API is open, asyncio believes a loop
    runs in this thread, so async tests collected after this folder could not start theirs.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    executable = chromium_path()
    if executable is None:
        where = os.environ.get("IMGPRO_TEST_CHROMIUM") or "/usr/bin/chromium"
        _unavailable(f"Chromium not found at {where} (apt-get install chromium, "
                     "or set IMGPRO_TEST_CHROMIUM)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True,
                                              args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser context (a desktop-sized window) for one test."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (gitignored by default): kept after the run for people to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
