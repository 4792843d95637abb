"""Debian's headless chromium, driven by Selenium through Debian's chromedriver.

Browser downloads cannot work here, so Selenium is pointed at the packaged
binaries; as root chromium needs ``--no-sandbox``. Screenshots go to
``build/test-artifacts/`` (kept after the run, for people to look at).

Chromium now and then hangs on its way out, and Selenium's ``quit`` waits for
it without end (a whole test run stuck in a fixture's teardown): chromedriver
and the browser it starts run in a process group of their own, which is
killed once ``quit`` returns or ``QUIT_TIMEOUT`` has passed.
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
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).parents[2] / "build" / "test-artifacts"
QUIT_TIMEOUT = 15.0  # seconds quit may take before the browser is killed


def browser_installed() -> bool:
    """Whether chromium and chromedriver are installed (make test installs them)."""
    return shutil.which(CHROMIUM) is not None and shutil.which(CHROMEDRIVER) is not None


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[webdriver.Chrome]:
    """A headless chromium window of that size; gone, every process of it, on leaving."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                f"--window-size={width},{height}"):  # fmt: skip
        options.add_argument(arg)
    service = Service(CHROMEDRIVER, popen_kw={"start_new_session": True})
    driver = webdriver.Chrome(options=options, service=service)
    assert service.process is not None
    group = service.process.pid  # chromedriver leads the new session's group
    try:
        yield driver
    finally:
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
