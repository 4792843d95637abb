"""The status page in a real headless browser (Debian's chromium), against a real agent.

One agent with a static resource and a fake phone (through the real adb
server), one coordinator (the strict fake Jenkins), one browser for the
module. The page must list what the agent has, follow every change without a
reload, survive an agent restart, offer administrator actions only with a
token, and stay usable with the keyboard and on a phone's screen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement

from tests.agentproc import AgentProcess
from tests.fakes.adb_server import AdbServer
from tests.fakes.adbd import FakeAdbd
from tests.fakes.jenkins import FakeJenkins, JenkinsServer
from tests.fakes.jsonrpc4j import JsonRpc4jClient
from tests.support.browser import browser_installed, chromium, screenshot
from tests.support.coordinator import NODE, coordinator
from tests.support.waiting import wait_for

pytestmark = [
    pytest.mark.skipif(not browser_installed(), reason="needs chromium (make test installs it)"),
    pytest.mark.timeout(90),
]

TOKEN = "s3cret-admin-token"
JENKINS_BUILD = "job/phone-tests/12/"


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def jenkins_server() -> Iterator[JenkinsServer]:
    with JenkinsServer(FakeJenkins([NODE])) as server:
        yield server


@pytest.fixture
def agent(
    agent_factory: Callable[..., AgentProcess],
    adb_server: AdbServer,
    jenkins_server: JenkinsServer,
    tmp_path: Path,
) -> AgentProcess:
    (tmp_path / "ops.token").write_text(TOKEN + "\n")
    config = {
        "agent": {"node": NODE},
        "server": {"token_files": {"ops": str(tmp_path / "ops.token")}, "admin_tokens": ["ops"]},
        "udev": {"enabled": False},
        "adb": {"server": adb_server.address, "allow_remote": True},
        "coordinator": [coordinator(jenkins_server)],
        "resource": [
            {"id": "printer", "description": "Zebra in rack 3", "metadata": {"type": "printer"}}
        ],
        "session": [
            {"kind": "static", "provision": [{"step": "command", "run": ["echo", "warming up"]}]}
        ],
    }
    made: AgentProcess = agent_factory(adb=True, config=config)
    return made


def post(agent: AgentProcess, path: str, body: dict[str, str]) -> int:
    """A change made beside the page, as an administrator; its HTTP status."""
    return agent.request("POST", path, body, headers={"Authorization": f"Bearer {TOKEN}"}).status


def row(browser: webdriver.Chrome, rid: str) -> WebElement:
    return browser.find_element(By.CSS_SELECTOR, f'tr[data-id="{rid}"]')


def cell(browser: webdriver.Chrome, rid: str, label: str) -> str:
    found: str = row(browser, rid).find_element(By.CSS_SELECTOR, f'td[data-label="{label}"]').text
    return found


def wait_cell(browser: webdriver.Chrome, rid: str, label: str, text: str) -> None:
    def shows() -> bool:
        try:
            return text in cell(browser, rid, label)
        except Exception:  # the row is not there yet
            return False

    try:
        wait_for(shows, timeout=10, what=f"{rid}'s {label} to show {text!r}")
    except AssertionError as exc:
        page = browser.find_element(By.TAG_NAME, "main").text
        raise AssertionError(f"{exc}; the page says:\n{page}") from None


def live(browser: webdriver.Chrome) -> None:
    wait_for(
        lambda: browser.find_element(By.ID, "connection").get_attribute("data-state") == "live",
        what="the page to be live",
    )


def open_page(browser: webdriver.Chrome, agent: AgentProcess) -> None:
    browser.get(agent.url + "/")
    live(browser)
    browser.execute_script("window.loadedOnce = true")  # gone if the page ever reloads


def not_reloaded(browser: webdriver.Chrome) -> bool:
    return bool(browser.execute_script("return window.loadedOnce === true"))


def set_token(browser: webdriver.Chrome, token: str | None) -> None:
    if token is None:
        browser.find_element(By.ID, "drop-token").click()
        return
    field = browser.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token, Keys.ENTER)


def test_the_page_lists_and_follows_the_agent(
    browser: webdriver.Chrome,
    agent: AgentProcess,
    adb_server: AdbServer,
    phones: Callable[..., FakeAdbd],
    jenkins_server: JenkinsServer,
) -> None:
    phone = phones(battery=64)
    adb_server.connect(phone.serial)
    wait_for(lambda: agent.get(f"/api/resources/{phone.serial}")["state"] == "free")
    open_page(browser, agent)
    assert browser.find_element(By.ID, "node").text == NODE
    assert browser.find_element(By.ID, "version").text == "0.1.0"
    wait_for(lambda: "in sync" in browser.find_element(By.ID, "coordinators").text)
    assert (
        jenkins_server.url.removeprefix("http://").rstrip("/")
        in browser.find_element(By.ID, "coordinators").text
    )
    wait_cell(browser, "printer", "State", "free")
    assert "Zebra in rack 3" in cell(browser, "printer", "Resource")
    wait_cell(browser, phone.serial, "Details", "battery 64%")
    assert cell(browser, phone.serial, "State") == "free"

    # A lock through JSON-RPC, as Jenkins takes it: shown without a reload.
    jenkins = JsonRpc4jClient(agent.url, jenkins=jenkins_server.url)
    key = jenkins.reserve(phone.serial, 30, "job/phone-tests/").key
    assert jenkins.lock(phone.serial, key, JENKINS_BUILD).ok
    wait_cell(browser, phone.serial, "State", "locked")
    holder = row(browser, phone.serial).find_element(By.CSS_SELECTOR, 'td[data-label="Holder"] a')
    assert holder.get_attribute("href") == jenkins_server.url + JENKINS_BUILD
    assert "ago" in cell(browser, phone.serial, "Since")
    screenshot(browser, "status-page")

    # Unplugged: absent, its hold kept.
    adb_server.disconnect(phone.serial)
    phone.stop()
    wait_for(lambda: not agent.get(f"/api/resources/{phone.serial}")["present"])
    wait_cell(browser, phone.serial, "Health", "not connected")
    assert jenkins.release(phone.serial, key, JENKINS_BUILD).ok
    wait_cell(browser, phone.serial, "State", "absent")
    assert not_reloaded(browser)


def test_admin_actions_need_the_token(browser: webdriver.Chrome, agent: AgentProcess) -> None:
    open_page(browser, agent)
    set_token(browser, None)
    wait_cell(browser, "printer", "State", "free")
    # Read-only: no administrator control is shown.
    assert "Read-only" in browser.find_element(By.ID, "mode").text
    assert not [b for b in row(browser, "printer").find_elements(By.TAG_NAME, "button")
                if b.is_displayed()]  # fmt: skip

    set_token(browser, TOKEN)
    assert "on" in browser.find_element(By.ID, "mode").text
    reason = row(browser, "printer").find_element(By.CSS_SELECTOR, "input[aria-label]")
    reason.send_keys("paper jam", Keys.ENTER)
    wait_cell(browser, "printer", "State", "disabled")
    wait_cell(browser, "printer", "Health", "disabled: paper jam")
    assert agent.get("/api/resources/printer")["disabled_reason"] == "paper jam"
    row(browser, "printer").find_element(By.XPATH, ".//button[text()='Enable']").click()
    wait_cell(browser, "printer", "State", "free")

    assert post(agent, "/api/resources/printer/lock", {"holder": "alice"}) == 200
    wait_cell(browser, "printer", "State", "locked")
    release = row(browser, "printer").find_element(By.XPATH, ".//button[text()='Force release']")
    release.click()
    assert release.text == "Confirm release"  # one click is not enough
    release.click()
    wait_cell(browser, "printer", "State", "free")
    assert "printer: force-released." in browser.find_element(By.ID, "message").text
    set_token(browser, None)


def test_admin_actions_are_refused_with_a_wrong_token(
    browser: webdriver.Chrome, agent: AgentProcess
) -> None:
    open_page(browser, agent)
    set_token(browser, "not-the-token")
    row(browser, "printer").find_element(By.XPATH, ".//button[text()='Disable']").click()
    wait_for(lambda: "refused (HTTP 40" in browser.find_element(By.ID, "message").text)
    assert agent.get("/api/resources/printer")["enabled"] is True
    set_token(browser, TOKEN)
    row(browser, "printer").find_element(By.XPATH, ".//button[text()='Disable']").click()
    wait_cell(browser, "printer", "State", "disabled")
    set_token(browser, None)


def test_the_page_reconnects_after_an_agent_restart(
    browser: webdriver.Chrome, agent: AgentProcess
) -> None:
    open_page(browser, agent)
    wait_cell(browser, "printer", "State", "free")
    agent.terminate()
    wait_for(
        lambda: (
            browser.find_element(By.ID, "connection").get_attribute("data-state") == "reconnecting"
        ),
        what="the page to notice",
    )
    agent.start()
    live(browser)
    assert post(agent, "/api/resources/printer/disable", {"reason": "after restart"}) == 200
    wait_cell(browser, "printer", "State", "disabled")
    assert not_reloaded(browser)


def test_a_session_log_is_one_click_away(browser: webdriver.Chrome, agent: AgentProcess) -> None:
    open_page(browser, agent)
    assert post(agent, "/api/resources/printer/lock", {}) == 200
    wait_cell(browser, "printer", "State", "locked")
    row(browser, "printer").find_element(By.LINK_TEXT, "session log").click()
    wait_for(lambda: "/log" in browser.current_url, what="the log page")
    assert "warming up" in browser.find_element(By.TAG_NAME, "body").text


def test_keyboard_labels_and_a_phone_screen(browser: webdriver.Chrome, agent: AgentProcess) -> None:
    open_page(browser, agent)
    set_token(browser, TOKEN)
    wait_cell(browser, "printer", "State", "free")
    # Every control has a name a screen reader can say.
    unnamed = browser.execute_script(
        """return [...document.querySelectorAll('input, button, a')].filter(e =>
             !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
             && !e.textContent.trim()).map(e => e.outerHTML)"""
    )
    assert unnamed == []
    # Tab walks from the token field to the resource's controls.
    browser.find_element(By.ID, "token").click()
    reached: list[Any] = []
    for _ in range(12):
        browser.switch_to.active_element.send_keys(Keys.TAB)
        reached.append(browser.switch_to.active_element.get_attribute("aria-label"))
    assert "Reason for disabling printer" in reached and "Disable printer" in reached
    # A phone: nothing wider than the screen, every value labelled.
    browser.set_window_size(390, 844)
    try:
        assert browser.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth"
        )
        label = browser.execute_script(
            """return getComputedStyle(document.querySelector(
                 'tr[data-id="printer"] td[data-label="State"]'), '::before').content"""
        )
        assert label == '"State: "'
        path: Path = screenshot(browser, "status-page-phone")
        assert path.stat().st_size > 0
    finally:
        browser.set_window_size(1280, 900)
        set_token(browser, None)
