"""Headless Chromium for the browser tests: Debian's `chromium` driven by Playwright, or a
skip that says what is missing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


@contextmanager
def chromium_page(width: int = 1440, height: int = 900) -> Iterator[Any]:
    """A Playwright page in headless Chromium, closed afterwards; the test is skipped, with
    the reason, when Playwright or Chromium cannot start."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed: pip install -e '.[test]' (see .ci/run)")
    executable = next(
        (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
    )
    try:
        playwright = sync_playwright().start()
    except Exception as exc:  # the driver Playwright ships could not start
        pytest.skip(f"Playwright could not start: {first_line(exc)}")
    try:
        try:
            browser = playwright.chromium.launch(executable_path=executable, headless=True)
        except PlaywrightError as exc:
            pytest.skip(
                f"Chromium ({executable or 'no chromium on PATH; Playwright build'}) could not be "
                f"launched: {first_line(exc)} (.ci/run installs Debian's chromium)"
            )
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()
    finally:
        playwright.stop()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
