"""``mgdm serve`` end to end in a real browser: headless Chromium driven by Selenium.

The app runs as ``python -m mgdm serve`` on a free loopback port, with ``TMPDIR`` pointed at a
folder of the test: after the server is stopped (SIGTERM) that folder must be empty, which checks
that the server wrote nothing but its own temporary folder and removed it. The browser is
Debian's ``chromium`` with its ``chromedriver`` (the Makefile's set-up installs both; nothing is
downloaded at run time: Selenium Manager is never asked, the driver is given by path). The tests
are skipped, saying why, only where those two programs or Selenium are missing.

A screenshot of each tab is saved in the test's temporary folder (printed with ``-s``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from mgdm.serve.browser import CHROMEDRIVER, CHROMIUM, start_chromium

missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
pytestmark = [
    # one server and one browser: under `pytest -n 2 --dist loadgroup` (make test) the whole
    # module runs in one worker instead of starting both twice
    pytest.mark.xdist_group("serve-browser"),
    pytest.mark.skipif(
        bool(missing),
        reason=f"{', '.join(missing)} missing: apt-get install chromium chromium-driver "
        "(make test's set-up does)",
    ),
]
pytest.importorskip("selenium.webdriver", reason="selenium is in the test extra")
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

START_SECONDS = 120
"""Time allowed for the server to import, load its priors and answer."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The URL of ``mgdm serve`` on a free loopback port; checks on exit that it cleaned up."""
    tmp = tmp_path_factory.mktemp("serve-tmp")
    port = _free_port()
    env = dict(os.environ, TMPDIR=str(tmp), GRADIO_ANALYTICS_ENABLED="False")
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mgdm", "serve", "--port", str(port), "--device", "cpu"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"mgdm serve did not start: {log.read_text()[-2000:]}")
        time.sleep(0.5)
    try:
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail("mgdm serve did not stop within 30 s of SIGTERM")
        # torch's compiler cache (torchinductor_<user>) is torch's, made on import, not the app's
        left = sorted(
            str(p.relative_to(tmp))
            for p in tmp.rglob("*")
            if not p.relative_to(tmp).parts[0].startswith("torchinductor_")
        )
        assert not left, f"mgdm serve left files in its TMPDIR: {left[:10]}"
    assert process.returncode == 0, log.read_text()[-2000:]


@pytest.fixture(scope="module")
def browser(server):
    """Headless Chromium, closed before the server stops (so no connection holds it up)."""
    profile = tempfile.mkdtemp(prefix="mgdm-chromium-")
    driver = start_chromium(profile, "--window-size=1400,1100")
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser, server):
    """A fresh page (a new session of the app)."""
    browser.get(server)
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#restore-button"), 30, "the page")
    return browser


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("serve-screenshots")
    print(f"screenshots of the tabs: {folder}")
    return folder


def _wait(condition, seconds: float, what: str):
    """Poll ``condition()`` until it is truthy; fail after ``seconds`` naming ``what``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = condition()
        except StaleElementReferenceException:  # the page re-rendered under us
            value = None
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"waited {seconds} s for {what}")


def _text(driver, selector: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, selector).text


def _set_number(driver, selector: str, value: object) -> None:
    field = driver.find_element(By.CSS_SELECTOR, f"{selector} input[type=number]")
    field.clear()
    field.send_keys(str(value))


def _choose(driver, selector: str, label: str) -> None:
    """Click the radio button labelled ``label`` inside ``selector``."""
    for option in driver.find_elements(By.CSS_SELECTOR, f"{selector} label"):
        if option.text.strip() == label:
            option.click()
            return
    pytest.fail(f"no option {label!r} in {selector}")


def _pick(driver, selector: str, option: str) -> None:
    """Choose ``option`` in the dropdown ``selector``."""
    driver.find_element(By.CSS_SELECTOR, f"{selector} input").click()
    items = _wait(
        lambda: driver.find_elements(By.CSS_SELECTOR, "ul[role=listbox] li"), 10, "the list"
    )
    for item in items:
        if item.text.strip() == option:
            item.click()
            return
    pytest.fail(f"no option {option!r} in {selector}")


def _upload(driver, selector: str, path: Path) -> None:
    driver.find_element(By.CSS_SELECTOR, f"{selector} input[type=file]").send_keys(str(path))
    _wait(lambda: path.stem in _text(driver, selector), 20, f"the upload of {path.name}")


def _image_size(driver, src: str) -> list[int]:
    """The natural size of the image at ``src``, loaded by the browser."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1]; const image = new Image();"
        "image.onload = () => done([image.naturalWidth, image.naturalHeight]);"
        "image.onerror = () => done([0, 0]); image.src = arguments[0];",
        src,
    )


def _tiles(driver, selector: str) -> dict[str, str]:
    """Caption -> image URL of the gallery ``selector``."""
    images = driver.find_elements(By.CSS_SELECTOR, f"{selector} img")
    return {image.get_attribute("alt"): image.get_attribute("src") for image in images}


def test_restore_an_uploaded_image(page, tmp_path, shots):
    from PIL import Image

    upload = tmp_path / "shirt.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)).save(upload)
    _choose(page, "#restore-source", "upload")
    _upload(page, "#restore-upload", upload)
    _set_number(page, "#restore-nfe", 30)
    _set_number(page, "#restore-samples", 2)
    page.find_element(By.CSS_SELECTOR, "#restore-button").click()
    tiles = _wait(
        lambda: (t := _tiles(page, "#restore-samples-a")) and "sample 1" in " ".join(t) and t,
        60,
        "the samples",
    )
    status = _text(page, "#restore-status")
    assert "Done" in status and "converted RGB colour to grey" in status, status
    samples = [src for caption, src in tiles.items() if caption.startswith("sample")]
    assert len(samples) == 2, tiles
    for caption, src in tiles.items():
        if not caption.startswith("y"):  # the observation of sr4 is 8x8
            assert _image_size(page, src) == [32, 32], caption
    assert "PSNR" in _text(page, "#restore-scores-a")
    downloads = _text(page, "#restore-downloads").replace("\n", "")
    assert "mgdm-grid.png" in downloads and "mgdm-samples.npy" in downloads, downloads
    page.save_screenshot(str(shots / "restore.png"))


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "not a readable image"), (b"", "is empty")],
    ids=["corrupt", "empty"],
)
def test_a_bad_upload_is_refused_in_the_page(page, tmp_path, content, message):
    bad = tmp_path / "broken.png"
    bad.write_bytes(content)
    _choose(page, "#restore-source", "upload")
    _upload(page, "#restore-upload", bad)
    page.find_element(By.CSS_SELECTOR, "#restore-button").click()
    _wait(lambda: message in page.find_element(By.TAG_NAME, "body").text, 20, repr(message))
    assert "broken.png" in page.find_element(By.TAG_NAME, "body").text
    assert "Running" not in _text(page, "#restore-status")


def test_compare_mode_shows_both_samplers(page):
    _set_number(page, "#restore-nfe", 30)
    _set_number(page, "#restore-samples", 1)
    _pick(page, "#restore-compare", "dps")
    page.find_element(By.CSS_SELECTOR, "#restore-button").click()
    _wait(lambda: _tiles(page, "#restore-samples-b"), 60, "the second sampler's samples")
    assert "sample 0" in " ".join(_tiles(page, "#restore-samples-a"))
    scores = _text(page, "#restore-scores-a"), _text(page, "#restore-scores-b")
    assert all("network calls per sample" in s for s in scores), scores


def test_cancel_a_running_job(page):
    # Self-contained (the other tests leave their source and budget in the form): a job of
    # 20,000 calls per sample cannot finish between "Running" and the click on Cancel.
    _choose(page, "#restore-source", "Fashion-MNIST test image")
    _set_number(page, "#restore-nfe", 20_000)
    _set_number(page, "#restore-samples", 1)
    page.find_element(By.CSS_SELECTOR, "#restore-button").click()
    _wait(lambda: "Running" in _text(page, "#restore-status"), 30, "the job to run")
    page.find_element(By.CSS_SELECTOR, "#restore-cancel").click()
    _wait(lambda: "Cancelled" in _text(page, "#restore-status"), 20, "the cancellation")
    assert not _tiles(page, "#restore-samples-a")
    page.find_element(By.CSS_SELECTOR, "#restore-cancel").click()
    _wait(lambda: "Nothing to cancel" in _text(page, "#restore-status"), 10, "the second click")


def test_separate_a_generated_mix(page, shots):
    page.find_element(By.XPATH, "//button[@role='tab'][contains(., 'Separate')]").click()
    _wait(lambda: page.find_element(By.CSS_SELECTOR, "#separate-button").is_displayed(), 10, "tab")
    _pick(page, "#separate-sampler", "msdm")  # MGDM's audio minimum is 205 calls: 20 s here
    _set_number(page, "#separate-nfe", 20)
    page.find_element(By.CSS_SELECTOR, "#separate-button").click()
    _wait(lambda: "Done" in _text(page, "#separate-status"), 90, "the stems")
    for name in ("mix", "bass", "drums", "guitar", "piano"):
        player = f"#separate-{name}"
        # the player (wavesurfer) has decoded the file: it shows its length, 0:02
        _wait(lambda p=player: "0:02" in _text(page, p), 20, f"the {name} player")
        src = page.find_element(By.CSS_SELECTOR, f"{player} a[download]").get_attribute("href")
        seconds = page.execute_async_script(
            "const done = arguments[arguments.length - 1]; const audio = new Audio();"
            "audio.onloadedmetadata = () => done(audio.duration);"
            "audio.onerror = () => done(-1); audio.src = arguments[0];",
            src,
        )
        assert seconds == pytest.approx(2**14 / 8000, abs=0.01), (name, seconds)
    downloads = _text(page, "#separate-downloads").replace("\n", "")
    assert all(f"{n}.wav" in downloads for n in ("bass", "drums", "guitar", "piano")), downloads
    page.save_screenshot(str(shots / "separate.png"))
