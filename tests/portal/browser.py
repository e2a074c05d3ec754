"""Playwright for Python driving Debian's Chromium: the browser the portal tests use, and its checks.

Playwright's own browser download cannot run here, so the tests launch the system's Chromium
(`apt-get install chromium`, which scripts/bootstrap.sh does). Without it they skip loudly, except
under CI=true, where a missing browser fails the run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CORTEX_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage",
               "--disable-component-update", "--no-first-run"]


def chromium_or_skip() -> str:
    found = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    missing = None
    if not found:
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "the playwright package is not installed (pip install -e '.[test]')"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests need Chromium and Playwright under CI=true: {missing}")
        print("\n" + "!" * 70 + f"\n!! BROWSER TESTS SKIPPED: {missing}\n" + "!" * 70)
        pytest.skip(missing)
    assert found is not None
    return found


class PageWatch:
    """Collects what the browser reports as broken: console errors, uncaught exceptions, failed requests."""

    def __init__(self, page: Any) -> None:
        self.problems: list[str] = []
        # Chromium logs every document answered 4xx as a console error; a test names the ones it causes.
        self.expected_statuses: set[int] = set()
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        text = message.text
        if any(f"status of {status} " in text for status in self.expected_statuses):
            return
        self.problems.append(f"console error: {text}")

    def expect_status(self, *statuses: int) -> None:
        self.expected_statuses.update(statuses)

    def assert_clean(self) -> None:
        assert self.problems == [], self.problems


def launch(path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot_dir(base: Path) -> Path:
    folder = Path(os.environ.get("CORTEX_PORTAL_SCREENSHOTS") or base / "portal-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
