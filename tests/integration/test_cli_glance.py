"""The command line at a glance: ``list``'s columns, ``history``, ``--json`` everywhere,
``--watch``, ``--version`` and ``-h``, help with defaults and limits, shell completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.agentproc import AgentProcess
from tests.fakes.jsonrpc4j import JsonRpc4jClient
from tests.support.holders import JENKINS

AgentFactory = Callable[..., AgentProcess]
BUILD = "job/phone-tests/12/"


def cli(
    *args: str, url: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "RESOURCE_AGENT_URL": url, **(env or {})}
    environ.pop("COLUMNS", None) if "COLUMNS" not in (env or {}) else None
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args],
        capture_output=True, text=True, env=environ, timeout=30, check=False,
    )  # fmt: skip


def rows(out: str) -> dict[str, str]:
    return {line.split()[0]: line for line in out.splitlines()[1:]}


def test_list_shows_who_holds_what_since_when_until_when(agent_factory: AgentFactory) -> None:
    agent = agent_factory(resources=["pixel", "printer", "scope"])
    jenkins = JsonRpc4jClient(agent.url)
    key = jenkins.reserve("pixel", 30, "job/phone-tests/").key
    assert jenkins.lock("pixel", key, BUILD).ok
    assert (
        agent.post("/api/resources/printer/lock", {"lease": 600, "holder": "alice"}).status == 200
    )
    assert agent.post("/api/resources/pixel/disable", {"reason": "cracked"}).status == 200
    run = cli("list", url=agent.url)
    assert run.returncode == 0, run.stderr
    table = rows(run.stdout)
    pixel = table["pixel"].split()
    jenkins_host = JENKINS.removeprefix("http://").rstrip("/")
    # A disabled resource that is held shows both.
    assert pixel[:5] == ["pixel", "static", "locked,disabled", jenkins_host, BUILD]
    assert (
        pixel[5].endswith("s") and pixel[6] == "-" and table["pixel"].endswith("disabled: cracked")
    )
    printer = table["printer"].split()
    assert printer[4] == "alice" and printer[6:8] == ["in", "9m"]
    assert table["scope"].split()[2:] == ["free", "-", "-", "-", "-", "-"]


def test_list_cuts_long_values_to_the_terminal(agent_factory: AgentFactory) -> None:
    agent = agent_factory(resources=["pixel"])
    reason = "the screen is cracked across the top and the touch layer misses taps " * 2
    assert agent.post("/api/resources/pixel/disable", {"reason": reason}).status == 200
    run = cli("list", url=agent.url, env={"COLUMNS": "70"})
    assert run.returncode == 0
    assert all(len(line) <= 70 for line in run.stdout.splitlines()), run.stdout
    assert "…" in rows(run.stdout)["pixel"]
    wide = cli("list", url=agent.url)  # not a terminal: nothing is cut
    assert reason.strip() in wide.stdout


def test_history(agent_factory: AgentFactory) -> None:
    agent = agent_factory(resources=["pixel"])
    jenkins = JsonRpc4jClient(agent.url)
    key = jenkins.reserve("pixel", 30, "job/phone-tests/").key
    assert jenkins.lock("pixel", key, BUILD).ok and jenkins.release("pixel", key, BUILD).ok
    assert agent.post("/api/resources/pixel/lock", {"holder": "alice"}).status == 200
    run = cli("history", "pixel", url=agent.url)
    assert run.returncode == 0, run.stderr
    holds, changes = run.stdout.split("\n\n")
    header, now, past = holds.splitlines()
    assert header.split()[:3] == ["KIND", "JENKINS", "JOB"]
    assert "alice" in now and now.endswith("holds it now")
    assert BUILD in past and past.endswith("released")
    header, *lines = changes.splitlines()
    assert header.split()[:3] == ["TIME", "ACTION", "JENKINS"]
    assert [ln.split("  ")[1].strip() for ln in lines] == ["lock", "release", "lock", "reserve"]
    assert "alice" in lines[0] and "127.0.0.1 (no token)" in lines[0]
    as_json = cli("history", "pixel", "--json", "--limit", "1", url=agent.url)
    assert json.loads(as_json.stdout) == agent.get("/api/resources/pixel/history?limit=1")
    missing = cli("history", "nope", url=agent.url)
    assert missing.returncode == 1 and "refused (1)" in missing.stderr


def test_every_printing_command_has_json(agent_factory: AgentFactory) -> None:
    agent = agent_factory(resources=["a"])
    url = agent.url

    def js(*args: str) -> object:
        run = cli(*args, "--json", url=url)
        assert run.returncode == 0, (args, run.stderr)
        return json.loads(run.stdout)

    reserved = js("reserve", "a", "--timeout", "60")
    key = reserved["hold"]["key"]  # type: ignore[index]
    assert js("lock", "a", "--key", key)["hold"]["kind"] == "locked"  # type: ignore[index]
    assert js("renew", "a", "--key", key, "--lease", "60")["hold"]["key"] == key  # type: ignore[index]
    assert js("show", "a")["state"] == "locked"  # type: ignore[index]
    assert js("list")["resources"][0]["id"] == "a"  # type: ignore[index]
    assert js("release", "a", "--key", key)["released"]["kind"] == "locked"  # type: ignore[index]
    assert js("disable", "a", "--reason", "x")["enabled"] is False  # type: ignore[index]
    assert js("enable", "a")["enabled"] is True  # type: ignore[index]
    assert js("status") == {"coordinators": [], "problems": []}
    assert len(js("history", "a")["history"]) == 1  # type: ignore[index]
    text = cli("show", "a", url=url).stdout
    assert text.startswith("a: a (static)\n") and "state:       free" in text


def test_version_and_short_help() -> None:
    version = cli("--version", url="http://127.0.0.1:1")
    assert (version.returncode, version.stdout) == (0, "resource-agent, version 0.1.0\n")
    for args in (("-h",), ("list", "-h"), ("session", "log", "-h")):
        run = cli(*args, url="http://127.0.0.1:1")
        assert run.returncode == 0 and run.stdout.startswith("Usage: resource-agent"), args
    reserve = cli("reserve", "-h", url="http://127.0.0.1:1").stdout
    assert "[default: 300.0]" in reserve and "at most 604800" in reserve
    history = " ".join(cli("history", "-h", url="http://127.0.0.1:1").stdout.split())
    assert "[default: 20; 1<=x<=10000]" in history


def test_list_watch_follows_the_event_stream(agent_factory: AgentFactory) -> None:
    agent = agent_factory(resources=["a"])
    env = {**os.environ, "RESOURCE_AGENT_URL": agent.url, "PYTHONUNBUFFERED": "1"}
    for as_json in (True, False):
        args = ["list", "--watch", *(["--json"] if as_json else [])]
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", *args],
            stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            if as_json:
                assert json.loads(first)["event"] == "snapshot"
            else:
                assert first.startswith("--- ")
                assert proc.stdout.readline().split()[0] == "ID"
                assert proc.stdout.readline().split()[:3] == ["a", "static", "free"]
            assert agent.post("/api/resources/a/disable", {"reason": "x"}).status == 200
            if as_json:
                event = json.loads(proc.stdout.readline())
                assert (event["event"], event["data"]["type"]) == ("resource", "disabled")
            else:
                lines = [proc.stdout.readline() for _ in range(3)]
                assert lines[2].split()[:3] == ["a", "static", "disabled"], lines
            assert agent.post("/api/resources/a/enable", {}).status == 200
        finally:
            proc.terminate()
            proc.wait(10)


def test_shell_completion_offers_resource_ids(agent_factory: AgentFactory) -> None:
    agent = agent_factory(resources=["pixel-7", "pixel-8", "printer"])
    env = {
        "_RESOURCE_AGENT_COMPLETE": "bash_complete",
        "COMP_WORDS": "resource-agent show pix",
        "COMP_CWORD": "2",
    }
    run = cli(url=agent.url, env=env)
    assert run.returncode == 0, run.stderr
    assert "pixel-7" in run.stdout and "pixel-8" in run.stdout and "printer" not in run.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_exist_for_each_shell(shell: str) -> None:
    run = cli(url="http://127.0.0.1:1", env={"_RESOURCE_AGENT_COMPLETE": f"{shell}_source"})
    assert run.returncode == 0 and "resource" in run.stdout.lower()
