"""Debian's headless chromium, driven by Selenium through Debian's chromedriver.

Browser downloads cannot work here, so Selenium is pointed at the packaged
binaries; as root chromium needs ``--no-sandbox``. Screenshots go to
``build/test-artifacts/`` (kept after the run, for people to look at).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).parents[2] / "build" / "test-artifacts"


def browser_installed() -> bool:
    """Whether chromium and chromedriver are installed (make test installs them)."""
    return shutil.which(CHROMIUM) is not None and shutil.which(CHROMEDRIVER) is not None


def chromium(width: int = 1280, height: int = 900) -> webdriver.Chrome:
    """A headless chromium window of that size."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                f"--window-size={width},{height}"):  # fmt: skip
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    """Save what the window shows as ``build/test-artifacts/<name>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot saved to {path}"
    return path
