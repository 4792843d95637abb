"""Debian's headless chromium, driven by Selenium through Debian's chromedriver.

Browser downloads cannot work here, so Selenium is pointed at the packaged
binaries; as root chromium needs ``--no-sandbox``. Screenshots go to
``build/test-artifacts/`` (kept after the run, for people to look at).

Chromium now and then hangs on its way out, and Selenium's ``quit`` waits for
it without end (a whole test run stuck in a fixture's teardown): chromedriver
and the browser it starts run in a process group of their own, which is
killed once ``quit`` returns or ``QUIT_TIMEOUT`` has passed. More rarely a
browser starts but never loads a page (its navigations hang, without a
connection made): each new one must load a page within ``PAGE_TIMEOUT``, or it
is killed and another started, and no page load waits longer than that.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).parents[2] / "build" / "test-artifacts"
QUIT_TIMEOUT = 15.0  # seconds quit may take before the browser is killed
PAGE_TIMEOUT = 30.0  # seconds a page may take to load (Selenium's own default: 300)
STARTS = 3  # browsers tried before giving up


def browser_installed() -> bool:
    """Whether chromium and chromedriver are installed (make test installs them)."""
    return shutil.which(CHROMIUM) is not None and shutil.which(CHROMEDRIVER) is not None


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[webdriver.Chrome]:
    """A headless chromium window of that size; gone, every process of it, on leaving."""
    for attempt in range(1, STARTS + 1):
        driver, group = _start(width, height)
        try:
            driver.get("data:text/html,<p>ready</p>")
        except TimeoutException:
            _stop(driver, group)
            if attempt == STARTS:
                raise
            continue
        except BaseException:
            _stop(driver, group)
            raise
        break
    try:
        yield driver
    finally:
        _stop(driver, group)


def _start(width: int, height: int) -> tuple[webdriver.Chrome, int]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                f"--window-size={width},{height}"):  # fmt: skip
        options.add_argument(arg)
    service = Service(CHROMEDRIVER, popen_kw={"start_new_session": True})
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(PAGE_TIMEOUT)
    assert service.process is not None
    return driver, service.process.pid  # chromedriver leads the new session's group


def _stop(driver: webdriver.Chrome, group: int) -> None:
    quitting = threading.Thread(target=driver.quit, daemon=True)
    quitting.start()
    quitting.join(QUIT_TIMEOUT)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    """Save what the window shows as ``build/test-artifacts/<name>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot saved to {path}"
    return path
