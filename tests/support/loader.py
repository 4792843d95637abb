"""Many clients taking, locking, renewing and releasing holds, as Jenkins and scripts do.

Half the clients speak JSON-RPC exactly as the dispatcher's jsonrpc4j does
(tests/fakes/jsonrpc4j.py: Reserve, Lock with the key, Release), the other
half REST (reserve then lock, or lock a free resource directly, with or
without a lease; renew; release). They compete for a small pool of
resources, so refusals and group commits are common. Every call is recorded
in a ``History`` (tests/support/history.py) with its outcome.

A client remembers the hold it has across rounds: after the agent was killed
and started again it carries on with the same key, so acknowledged holds are
used after restarts, not only looked at. A client stops at the first broken
connection (the agent is gone); ``Loader.stop`` waits for them all.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from agent.model import Code
from tests.agentproc import http_request
from tests.fakes.jsonrpc4j import JsonRpc4jClient, JsonRpcError, Mode, ProtocolViolation, Result
from tests.support.history import History, Kind, Op, Outcome

T = TypeVar("T")

RESERVE_SECONDS = 600  # long: expiry is not what these runs test
LEASE_SECONDS = 600
# A refusal that leaves the hold as it was: the disk did not take the change (or
# may have: then it is not in effect until a restart, and the call is an UNKNOWN).
KEEPS_HOLD = {int(Code.NOT_SAVED), int(Code.SAVE_UNCERTAIN)}


class AgentGone(Exception):
    """The connection broke: the agent is not there (any more)."""


@dataclass
class Held:
    """The hold a client has: its resource and key, and what it knows of it."""

    resource: str
    key: str
    n: int  # the take's number, in its holder URLs
    locked: bool = False  # Lock acknowledged (or in flight when the agent died)
    lease: bool = False  # a REST lock with a lease: renewable
    renewed: bool = False
    releasing: bool = False  # only a release is left to do


class Client:
    """One client's loop; ``step`` does one call."""

    def __init__(
        self,
        name: str,
        rest: bool,
        resources: Sequence[str],
        history: History,
        *,
        rng: random.Random,
        pause: float,
    ) -> None:
        self.name = name
        self.rest = rest
        self.resources = list(resources)
        self.history = history
        self.rng = rng
        self.pause = pause
        self.held: Held | None = None
        self.takes = 0
        self.url = ""
        self.violations: list[str] = []  # answers no client should ever get

    # ---------------------------------------------------------------- the loop

    def run(self, url: str, stop: threading.Event) -> None:
        """Call the agent at ``url`` until ``stop`` or until it is gone."""
        self.url = url
        mode = Mode.JSONRPC4J_1_5 if self.rng.random() < 0.5 else Mode.PLUGIN_1_1
        self.jenkins = JsonRpc4jClient(url, mode=mode, timeout=30)
        try:
            while not stop.is_set():
                self.step()
                time.sleep(self.rng.uniform(0, self.pause))
        except AgentGone:
            return

    def step(self) -> None:
        """One call: take a hold, or move the one held on."""
        held = self.held
        if held is None:
            self._take()
        elif held.releasing or (held.locked and (held.renewed or not held.lease)):
            self._release(held)
        elif held.locked:
            self._renew(held)
        elif self.rng.random() < 0.1:
            self._release(held)  # a reservation abandoned
        else:
            self._lock(held)

    # ------------------------------------------------------------- the calls

    def _take(self) -> None:
        rid = self.rng.choice(self.resources)
        self.takes += 1
        n = self.takes
        if not self.rest:
            op = self._invoke(Kind.RESERVE, rid, f"job/{self.name}-{n}/")
            reserve = self.jenkins.reserve
            answer = self._jsonrpc(op, lambda: reserve(rid, RESERVE_SECONDS, op.holder))
            if answer is not None:
                self.held = Held(rid, answer, n)
            return
        if self.rng.random() < 0.5:
            op = self._invoke(Kind.RESERVE, rid, f"{self.name}/{n}/reserve")
            body: dict[str, Any] = {"timeout": RESERVE_SECONDS, "holder": op.holder}
            key = self._rest(op, f"/api/resources/{rid}/reserve", body)
            if key is not None:
                self.held = Held(rid, key, n)
            return
        lease = self.rng.random() < 0.5
        op = self._invoke(Kind.LOCK, rid, f"{self.name}/{n}/lock")
        body = {"holder": op.holder} | ({"lease": LEASE_SECONDS} if lease else {})
        key = self._rest(op, f"/api/resources/{rid}/lock", body)
        if key is not None:
            self.held = Held(rid, key, n, locked=True, lease=lease)

    def _lock(self, held: Held) -> None:
        rid = held.resource
        if not self.rest:
            op = self._invoke(Kind.LOCK, rid, f"job/{self.name}-{held.n}/{held.n}/", held.key)
            answer = self._jsonrpc(op, lambda: self.jenkins.lock(rid, held.key, op.holder))
        else:
            op = self._invoke(Kind.LOCK, rid, f"{self.name}/{held.n}/lock", held.key)
            held.lease = self.rng.random() < 0.5
            body: dict[str, Any] = {"key": held.key, "holder": op.holder}
            if held.lease:
                body["lease"] = LEASE_SECONDS
            answer = self._rest(op, f"/api/resources/{rid}/lock", body)
        if answer is not None:
            held.locked = True
        elif op.code not in KEEPS_HOLD:
            held.releasing = True  # refused: let go of whatever is left of it

    def _renew(self, held: Held) -> None:
        op = self._invoke(Kind.RENEW, held.resource, "", held.key)
        body = {"key": held.key, "lease": LEASE_SECONDS}
        self._rest(op, f"/api/resources/{held.resource}/renew", body)
        held.renewed = True

    def _release(self, held: Held) -> None:
        rid = held.resource
        op = self._invoke(Kind.RELEASE, rid, "", held.key)
        if self.rest:
            answer = self._rest(op, f"/api/resources/{rid}/release", {"key": held.key})
        else:
            url = f"job/{self.name}-{held.n}/{held.n}/"
            answer = self._jsonrpc(op, lambda: self.jenkins.release(rid, held.key, url))
        if answer is not None or op.code not in KEEPS_HOLD:
            self.held = None

    # -------------------------------------------------------------- plumbing

    def _invoke(self, kind: Kind, rid: str, holder: str, key: str | None = None) -> Op:
        via = "rest" if self.rest else "jsonrpc"
        return self.history.invoke(self.name, via, kind, rid, holder, key=key)

    def _send(self, op: Op, call: Callable[[], T]) -> T:
        """Make the call; a broken connection completes ``op`` and ends the round (AgentGone)."""
        try:
            return call()
        except ConnectionRefusedError as exc:  # never sent: certainly not done
            self.history.complete(op, Outcome.FAIL, message="connection refused")
            raise AgentGone from exc
        except (OSError, http.client.HTTPException) as exc:  # sent, and cut short
            self.history.complete(op, Outcome.UNKNOWN, message=repr(exc))
            raise AgentGone from exc

    def _jsonrpc(self, op: Op, call: Callable[[], Result]) -> str | None:
        """Make the call; the key it answered (None: refused)."""
        try:
            result = self._send(op, call)
        except (JsonRpcError, ProtocolViolation) as exc:
            self.history.complete(op, Outcome.UNKNOWN, message=str(exc))
            self.violations.append(f"{op.kind} {op.resource} via JSON-RPC: {exc}")
            return None
        if result.ok:
            self.history.complete(op, Outcome.OK, code=0, key=result.key,
                                  expires=result.time / 1000)  # fmt: skip
            return str(result.key)
        self._refused(op, result.code, result.message)
        return None

    def _rest(self, op: Op, path: str, body: dict[str, Any]) -> str | None:
        """POST ``body``; the hold's key it answered (None: refused)."""
        resp = self._send(op, lambda: http_request(self.url, "POST", path, body, timeout=30))
        data = resp.json()
        if resp.status == 200:
            hold = data.get("hold") or data["released"]
            expires = hold["expires"]
            when = datetime.fromisoformat(expires).timestamp() if expires else None
            self.history.complete(op, Outcome.OK, code=0, key=hold.get("key"), expires=when)
            return str(hold.get("key") or op.key)
        error = data.get("error", {})
        if resp.status >= 500 and error.get("code") not in KEEPS_HOLD:
            self.history.complete(op, Outcome.UNKNOWN, message=str(data))
            self.violations.append(f"{op.kind} {op.resource} via REST: HTTP {resp.status} {data}")
            return None
        self._refused(op, error.get("code"), error.get("message", ""))
        return None

    def _refused(self, op: Op, code: int | None, message: str) -> None:
        """A NO; one that says the change may be saved is an UNKNOWN, not a refusal."""
        outcome = Outcome.UNKNOWN if code == Code.SAVE_UNCERTAIN else Outcome.FAIL
        self.history.complete(op, outcome, code=code, message=message)


class Loader:
    """``clients`` clients over ``resources``, run in threads, one round at a time."""

    def __init__(
        self,
        resources: Sequence[str],
        history: History,
        *,
        clients: int = 12,
        seed: int = 0,
        pause: float = 0.01,
    ) -> None:
        rng = random.Random(seed)
        self.history = history
        self.clients = [
            Client(
                f"c{i}",
                i % 2 == 1,
                resources,
                history,
                rng=random.Random(rng.random()),
                pause=pause,
            )
            for i in range(clients)
        ]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, url: str) -> None:
        """Every client calls the agent at ``url`` from now on."""
        self._stop.clear()
        self._threads = [
            threading.Thread(target=c.run, args=(url, self._stop), name=c.name, daemon=True)
            for c in self.clients
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop every client (those whose agent is gone have stopped already)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
            assert not thread.is_alive(), f"client {thread.name} did not stop"
        self.history.settle()

    @property
    def violations(self) -> list[str]:
        """Answers that no client should ever get (HTTP 500, JSON-RPC errors, broken results)."""
        return [v for c in self.clients for v in c.violations]
