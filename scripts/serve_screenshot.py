"""Screenshots of ``mgdm serve`` for the docs, and the time from clicking Restore to the samples.

Starts ``python -m mgdm serve`` on a free loopback port, opens it in Debian's headless Chromium
(Selenium, the driver given by path: nothing is downloaded), presses Restore with the page's
default settings (Fashion-MNIST test image 0, sr4, MGDM's default budget, 4 samples) and times
the click until the samples are shown, ``--runs`` times (a new page each time); then separates
the generated mix with MGDM at 210 network calls per window (its audio minimum is 205). Writes ``OUT/serve.png`` (the restore tab
after the last run) and ``OUT/serve-separate.png``, and prints the times::

    .venv/bin/python scripts/serve_screenshot.py --out docs/img --runs 3
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from selenium.webdriver.common.by import By

from mgdm.serve.browser import start_chromium


def wait(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"waited {seconds} s for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    server = subprocess.Popen(
        [sys.executable, "-m", "mgdm", "serve", "--port", str(port), "--device", "cpu"],
        env=dict(os.environ, GRADIO_ANALYTICS_ENABLED="False"),
    )
    profile = tempfile.TemporaryDirectory(prefix="mgdm-chromium-")
    driver = start_chromium(profile.name, "--hide-scrollbars", "--window-size=1400,1350")
    try:

        def up() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return True
            except OSError:
                return False

        wait(up, 180, "the server")
        args.out.mkdir(parents=True, exist_ok=True)
        times = []
        for _ in range(args.runs):
            driver.get(url)
            button = wait(lambda: driver.find_elements(By.ID, "restore-button"), 30, "the page")
            start = time.perf_counter()
            button[0].click()
            wait(
                lambda: driver.find_elements(By.CSS_SELECTOR, "#restore-samples-a img"),
                600,
                "the samples",
            )
            times.append(time.perf_counter() - start)
            print(f"click -> samples: {times[-1]:.1f} s", flush=True)
        time.sleep(1.5)  # the lazy tiles load
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(str(args.out / "serve.png"))
        driver.find_element(By.XPATH, "//button[@role='tab'][contains(., 'Separate')]").click()
        driver.find_element(By.CSS_SELECTOR, "#separate-sampler input").click()
        for item in wait(
            lambda: driver.find_elements(By.CSS_SELECTOR, "ul[role=listbox] li"), 10, "the list"
        ):
            if item.text.strip() == "mgdm":
                item.click()
                break
        nfe = driver.find_element(By.CSS_SELECTOR, "#separate-nfe input[type=number]")
        nfe.clear()
        nfe.send_keys("210")
        driver.find_element(By.ID, "separate-button").click()
        wait(lambda: "Done" in driver.find_element(By.ID, "separate-status").text, 300, "stems")
        time.sleep(1.5)
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(str(args.out / "serve-separate.png"))
        print("click -> samples, s:", " ".join(f"{t:.1f}" for t in times))
    finally:
        driver.quit()
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        profile.cleanup()


if __name__ == "__main__":
    main()
