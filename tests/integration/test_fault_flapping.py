"""USB flapping: hundreds of add and remove uevents in seconds, through umockdev.

The real agent process (udev on, adb off) watches a umockdev testbed and keeps
one strict fake Jenkins in step. Phones are plugged and unplugged at random
-- one of them over and over, the others now and then, and phones never seen
before that come and go -- while some of them are held. umockdev's queue
limit is respected by the testbed itself (tests/fakes/umockdev.py paces every
uevent against the receivers' queues). Afterwards the agent must still be up,
every hold must have survived (each held phone was back within the grace
period), the resources must be exactly what is plugged (plus the ones that
left, absent and then gone), Jenkins must match, and a flap must have cost
Jenkins next to nothing: a phone back within the grace period changes nothing
it needs to know.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator

import pytest

from tests.agentproc import AgentProcess
from tests.fakes.jenkins import FakeJenkins, JenkinsServer
from tests.fakes.jsonrpc4j import JsonRpc4jClient
from tests.fakes.umockdev import Testbed, phone, umockdev_active
from tests.support.churn import OTHER_JENKINS
from tests.support.convergence import converged
from tests.support.coordinator import NODE, coordinator
from tests.support.scale import scaled
from tests.support.waiting import wait_for

pytestmark = pytest.mark.skipif(
    not umockdev_active(), reason="needs umockdev-wrapper (make test runs it)"
)

PHONES = 10
EVENTS = scaled(400)
GRACE = 6.0  # longer than the flapping: every hold must survive it


def flap(
    testbed: Testbed, root: str, serials: list[str], paths: dict[str, str], plugged: set[str]
) -> int:
    """EVENTS plugs and unplugs (``paths`` and ``plugged`` follow); how many strangers came."""
    rng = random.Random(7)
    strangers = 0
    for n in range(EVENTS):
        # Half the events are one phone flapping; the rest spread over the others,
        # and now and then a phone never seen before comes and goes at once.
        serial = serials[0] if n % 2 else rng.choice(serials)
        if n % 25 == 0:
            strangers += 1
            name = f"STRANGER{strangers:02d}"
            testbed.unplug(testbed.plug(root, 50 + strangers, phone(name)))
            continue
        if serial in plugged:
            testbed.unplug(paths.pop(serial))
            plugged.discard(serial)
        else:
            paths[serial] = testbed.plug(root, serials.index(serial) + 1, phone(serial))
            plugged.add(serial)
    return strangers


@pytest.fixture
def testbed() -> Iterator[Testbed]:
    with Testbed() as tb:
        yield tb


def test_hundreds_of_uevents_in_seconds(
    agent_factory: Callable[..., AgentProcess], testbed: Testbed
) -> None:
    root = testbed.controller()
    serials = [f"FLAP{i:02d}" for i in range(PHONES)]
    paths = {s: testbed.plug(root, i + 1, phone(s)) for i, s in enumerate(serials)}
    with JenkinsServer(FakeJenkins([NODE])) as server:
        agent = agent_factory(
            udev=True,
            env=testbed.env,
            config={
                "agent": {"node": NODE, "grace_period": GRACE},
                "coordinator": [coordinator(server)],
            },
        )
        converged(agent, server, quiet=0)
        rpc = JsonRpc4jClient(agent.url, jenkins=OTHER_JENKINS)
        keys = {s: rpc.reserve(s, 600, "job/flap/").key for s in serials[:2]}
        for s in serials[2:5]:
            locked = agent.post(f"/api/resources/{s}/lock", {"holder": "alice"})
            keys[s] = locked.json()["hold"]["key"]
        converged(agent, server, quiet=0)
        server.jenkins.clear_requests()

        plugged = set(serials)
        began = time.monotonic()
        strangers = flap(testbed, root, serials, paths, plugged)
        for serial in sorted(set(serials[:5]) - plugged):  # every held phone comes back
            paths[serial] = testbed.plug(root, serials.index(serial) + 1, phone(serial))
            plugged.add(serial)
        took = time.monotonic() - began

        def settled() -> bool:
            listed = agent.get("/api/resources")["resources"]
            return {r["id"] for r in listed if r["present"]} == plugged

        wait_for(settled, timeout=30, what="the agent to see exactly what is plugged")
        # What stayed away is gone after the grace period, and Jenkins is told so.
        wait_for(lambda: all(r["present"] or r["gone"] for r in
                             agent.get("/api/resources")["resources"]),
                 timeout=GRACE + 20, what="the grace period of what stayed away")  # fmt: skip
        converged(agent, server, quiet=0)
        requests = server.jenkins.recorded()
        print(f"{EVENTS} changes ({testbed.drain_waits} waits for the agent to read) in "
              f"{took:.1f} s; Jenkins got {len(requests)} requests")  # fmt: skip
        assert agent.running() and agent.get("/api/health")["status"] == "ok"
        listed = {r["id"]: r for r in agent.get("/api/resources")["resources"]}
        # A stranger plugged and unplugged between two reads of the monitor is never
        # seen at all (the last event per device wins); one that was seen is absent.
        seen = {f"STRANGER{i:02d}" for i in range(1, strangers + 1)} & set(listed)
        assert set(listed) == set(serials) | seen
        assert not any(listed[s]["present"] for s in seen)
        for serial in keys:
            state = "reserved" if serial in serials[:2] else "locked"
            assert listed[serial]["state"] == state, listed[serial]
        # The holds are the same holds: their keys still release them.
        for serial in serials[:2]:
            assert rpc.release(serial, keys[serial], "job/flap/").ok
        for serial in serials[2:5]:
            released = agent.post(f"/api/resources/{serial}/release", {"key": keys[serial]})
            assert released.status == 200, released.body
        # Flaps within the grace period are nothing Jenkins needs to know: the strangers
        # are registered (in a few batched updates), what left is disabled, nothing else.
        gone = {rid for rid, r in listed.items() if r["gone"]}
        assert gone == (set(serials) - plugged) | seen
        commands = [(r.command, r.params.get("id")) for r in requests if r.command != "update"]
        assert sorted(commands) == sorted(("disable", rid) for rid in gone), commands
        assert len(requests) - len(commands) <= strangers, len(requests)
        assert "Traceback" not in agent.log(), agent.log_tail()
