"""Does a Jenkins believe what the agent knows? The differences, named one by one.

The agent's side is ``GET /api/resources`` (what people see); Jenkins' side is
the strict fake's metadata (``FakeJenkins.resources``). For every resource
the agent lists, Jenkins must have it registered with the same description
and metadata (a value the agent dropped shows as ""), enabled exactly when
the agent would let a build have it, and the same hold: reserved or locked,
by the same holder. Cleaning counts as locked (by the agent itself). What
Jenkins has and the agent does not must be disabled and free.

Holds must be taken by clients other than the Jenkins checked here (another
controller's clientInfo, or REST): a Jenkins ignores echoes of its own holds
and keeps them itself, so they would not show in its metadata.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from tests.agentproc import AgentProcess
from tests.fakes.jenkins import JenkinsServer
from tests.support.coordinator import NODE, flat

QUIET = 2.0  # a match must last this long (past the agent's re-read after an outage)
CONVERGE_TIMEOUT = 30.0

# The agent's state -> the hold Jenkins must show.
HOLD_OF_STATE = {
    "reserved": "reserved",
    "locked": "locked",
    "provisioning": "locked",
    "cleaning": "locked",
}


def _hold(res: Mapping[str, Any]) -> tuple[str, str] | None:
    for kind in ("locked", "reserved"):
        if res.get(kind):
            return kind, str(res[kind]["stashed-by"])
    return None


def differences(
    agent: Sequence[Mapping[str, Any]], jenkins: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """What Jenkins believes that the agent does not, one line per resource and fact."""
    out: list[str] = []
    for res in agent:
        rid = res["id"]
        remote = jenkins.get(rid)
        if remote is None:
            out.append(f"{rid}: not registered")
            continue
        usable = res["enabled"] and not res["gone"] and res["problem"] is None
        if remote["enabled"] is not usable:
            out.append(f"{rid}: enabled={remote['enabled']} in Jenkins, usable={usable}")
        description = res["description"] or res["name"]
        if remote["description"] != description:
            out.append(f"{rid}: description {remote['description']!r}, not {description!r}")
        values = flat(dict(remote))
        wanted = {k: "" for k in values} | dict(res["metadata"])
        if values != wanted:
            out.append(f"{rid}: metadata {values}, not {wanted}")
        kind = HOLD_OF_STATE.get(res["state"])
        held = _hold(remote)
        if kind is None:
            if held is not None:
                out.append(f"{rid}: {held[0]} by {held[1]} in Jenkins, {res['state']} here")
        elif held is None or held[0] != kind:
            out.append(f"{rid}: {held} in Jenkins, {res['state']} here")
        elif res["state"] != "cleaning" and held[1] != (
            res["holder"]["holder"]["url"] or res["holder"]["holder"]["id"]
        ):
            out.append(f"{rid}: {kind} by {held[1]} in Jenkins, by {res['holder']} here")
    known = {res["id"] for res in agent}
    for rid, remote in jenkins.items():
        if rid not in known and (remote["enabled"] or _hold(remote) is not None):
            out.append(f"{rid}: unknown to the agent, but enabled or held in Jenkins")
    return out


def gap(agent: AgentProcess, server: JenkinsServer) -> list[str]:
    """What ``server`` (node NODE) believes that the agent does not ([] when converged)."""
    return differences(agent.get("/api/resources")["resources"], server.jenkins.resources(NODE))


def in_sync(agent: AgentProcess) -> bool:
    """Whether the agent says every coordinator is in sync."""
    return all(c["state"] == "in sync" for c in agent.get("/api/coordinators")["coordinators"])


def converged(agent: AgentProcess, server: JenkinsServer, quiet: float = QUIET) -> float:
    """Wait until Jenkins matches the agent and keeps matching for ``quiet`` seconds.

    Answers when that lasting match began, in seconds from the call.
    """
    began = time.monotonic()
    matched: float | None = None
    while True:
        now = time.monotonic()
        if in_sync(agent) and not gap(agent, server):
            matched = now if matched is None else matched
            if now - matched >= quiet:
                return matched - began
        else:
            matched = None
        if now - began > CONVERGE_TIMEOUT:
            raise AssertionError(
                f"Jenkins does not match the agent after {CONVERGE_TIMEOUT} s: "
                f"{gap(agent, server)}\n{agent.log_tail()}"
            )
        time.sleep(0.02)
