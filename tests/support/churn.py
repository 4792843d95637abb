"""Random, valid change on a running agent: phones come and go, holds and switches change.

``Churn`` drives a real agent process the way a busy lab does: umockdev
phones are plugged, unplugged and plugged back (udev on, adb off: a phone is
usable as soon as udev sees it); another Jenkins controller reserves, locks
and releases over JSON-RPC as its client sends it; people lock and release
through REST; an administrator disables and enables. Each step picks what
makes sense now (a free resource to reserve, a hold it took to release), so
every answer it gets must be OK; a refusal fails the test. ``log`` keeps what
was done, for failure messages.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.agentproc import AgentProcess
from tests.fakes.jsonrpc4j import JsonRpc4jClient
from tests.fakes.umockdev import Testbed, phone

# Holds are taken as another controller: the Jenkins that is checked shows them.
OTHER_JENKINS = "http://other-jenkins.example:8080/"


@dataclass
class Churn:
    """One agent, its testbed, and what this churn holds and has plugged."""

    agent: AgentProcess
    testbed: Testbed
    root: str  # the root hub phones are plugged into
    statics: list[str]  # static resources to hold, disable and enable
    rng: random.Random = field(default_factory=lambda: random.Random(11))
    log: list[str] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)  # rid -> key of a hold taken here
    plugged: dict[str, str] = field(default_factory=dict)  # serial -> syspath
    unplugged: list[str] = field(default_factory=list)  # serials that may come back
    ports: dict[str, int] = field(default_factory=dict)  # serial -> root port
    disabled: set[str] = field(default_factory=set)
    made: int = 0

    def __post_init__(self) -> None:
        self.rpc = JsonRpc4jClient(self.agent.url, jenkins=OTHER_JENKINS)

    # ------------------------------------------------------------- devices

    def plug_new(self) -> None:
        """A phone never seen before, on a port of its own."""
        self.made += 1
        serial = f"CHURN{self.made:03d}"
        self.ports[serial] = len(self.ports) + 1
        self._plug(serial)

    def _plug(self, serial: str) -> None:
        self.plugged[serial] = self.testbed.plug(self.root, self.ports[serial], phone(serial))
        self.log.append(f"plug {serial}")

    def unplug(self) -> None:
        """A plugged phone goes away (its hold, if any, stays)."""
        if not self.plugged:
            return self.plug_new()
        serial = self.rng.choice(sorted(self.plugged))
        self.testbed.unplug(self.plugged.pop(serial))
        self.unplugged.append(serial)
        self.log.append(f"unplug {serial}")
        return None

    def replug(self) -> None:
        """A phone that went away comes back to its port."""
        if not self.unplugged:
            return self.plug_new()
        serial = self.unplugged.pop(self.rng.randrange(len(self.unplugged)))
        self._plug(serial)
        return None

    # --------------------------------------------------------------- holds

    def _free(self) -> list[str]:
        listed = self.agent.get("/api/resources")["resources"]
        return sorted(r["id"] for r in listed if r["state"] == "free" and r["id"] not in self.keys)

    def take(self) -> None:
        """Reserve then lock as the other Jenkins, or lock through REST as a person."""
        free = self._free()
        if not free:
            return
        rid = self.rng.choice(free)
        if self.rng.random() < 0.5:
            reserved = self.rpc.reserve(rid, 600, "job/churn/")
            assert reserved.ok, (rid, reserved, self.log)
            key = reserved.key
            assert key is not None
            if self.rng.random() < 0.7:
                locked = self.rpc.lock(rid, key, "job/churn/7/")
                assert locked.ok, (rid, locked, self.log)
            self.keys[rid] = key
            self.log.append(f"jenkins holds {rid}")
        else:
            resp = self.agent.post(f"/api/resources/{rid}/lock", {"holder": "churner"})
            assert resp.status == 200, (rid, resp.body, self.log)
            self.keys[rid] = resp.json()["hold"]["key"]
            self.log.append(f"person locks {rid}")

    def give_back(self) -> None:
        """Release a hold this churn took."""
        if not self.keys:
            return self.take()
        rid = self.rng.choice(sorted(self.keys))
        key = self.keys.pop(rid)
        if self.rng.random() < 0.5:
            released = self.rpc.release(rid, key, "job/churn/7/")
            assert released.ok, (rid, released, self.log)
        else:
            resp = self.agent.post(f"/api/resources/{rid}/release", {"key": key})
            assert resp.status == 200, (rid, resp.body, self.log)
        self.log.append(f"release {rid}")
        return None

    def switch(self) -> None:
        """Disable a static resource, or enable one that was disabled."""
        rid = self.rng.choice(self.statics)
        if rid in self.disabled:
            resp = self.agent.post(f"/api/resources/{rid}/enable", {})
            self.disabled.discard(rid)
        else:
            resp = self.agent.post(f"/api/resources/{rid}/disable", {"reason": "churn"})
            self.disabled.add(rid)
        assert resp.status == 200, (rid, resp.body, self.log)
        self.log.append(f"switch {rid}")

    def step(self) -> None:
        """One change, picked at random."""
        steps: list[Callable[[], Any]] = [
            self.plug_new,
            self.unplug,
            self.replug,
            self.take,
            self.take,
            self.give_back,
            self.give_back,
            self.switch,
        ]
        self.rng.choice(steps)()
