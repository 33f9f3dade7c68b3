"""Dashboard fixtures: a dashboard server on a free port, and headless Chromium (Selenium).

Chromium and its driver come from Debian (`make browser` installs them). If either is
missing the test fails and says so: never a silent skip.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from meterline.dashboard import DashboardServer, Source

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER = ("chromedriver", "/usr/lib/chromium/chromedriver")


def _find(env: str, names: tuple[str, ...]) -> str | None:
    if os.environ.get(env):
        return os.environ[env] if Path(os.environ[env]).is_file() else None
    for name in names:
        found = shutil.which(name) or (name if Path(name).is_file() else None)
        if found:
            return found
    return None


@pytest.fixture
def serve_dashboard() -> Iterator[Callable[[Any, str], DashboardServer]]:
    started: list[DashboardServer] = []

    def start(client: Any, database: str) -> DashboardServer:
        server = DashboardServer(Source(client, database), port=0).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium driven through Selenium and Debian's chromedriver."""
    chromium = _find("METERLINE_CHROMIUM", CHROMIUM)
    driver_path = _find("METERLINE_CHROMEDRIVER", CHROMEDRIVER)
    if chromium is None or driver_path is None:
        pytest.fail(
            "headless Chromium is needed for the dashboard test and was not found "
            f"(chromium: {chromium}, chromedriver: {driver_path}). Install it with "
            "`make browser` (apt-get install chromium chromium-driver), or point "
            "METERLINE_CHROMIUM / METERLINE_CHROMEDRIVER at them.",
            pytrace=False,
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1440,1000",
        "--force-device-scale-factor=1",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    except Exception as exc:
        pytest.fail(f"could not start headless Chromium ({chromium}): {exc}", pytrace=False)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()
