"""Headless Chromium on the page of ``mgdm serve``, for programs that look at it: the browser
test (tests/test_serve_browser.py) and the docs' screenshots (scripts/serve_screenshot.py).

The browser is Debian's ``chromium`` with its ``chromedriver`` (the Makefile's set-up installs
both), driven by Selenium (in the test extra). The driver is given by path, so Selenium Manager
is never asked and nothing is downloaded at run time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
"""Headless, offline: without the network flags Chromium stalls on a machine with no network."""


def start_chromium(profile: Path | str, *flags: str) -> Any:  # -> selenium's WebDriver
    """Headless :data:`CHROMIUM` with :data:`CHROME_FLAGS`, its profile in the folder
    ``profile``, and ``flags`` besides (e.g. ``--window-size=1400,1100``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROME_FLAGS, f"--user-data-dir={profile}", *flags):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
