"""A Jepsen-style history: every operation a client invoked, and how it completed.

Each ``Op`` is recorded when it is invoked and completed once: ``ok`` (the
agent said yes), ``fail`` (it said no -- ``code`` says why -- or the request
never reached it -- no ``code``: the change certainly did not happen) or
``unknown`` (the connection broke after the request was sent: the agent was
killed with it in flight, and the change may or may not have happened; or
the agent said it may have: code 16; or a yes arrived while the power was
being cut, see ``doubt_from``).
``tests/support/checker.py`` judges the agent's state against it.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

DOUBTED = "answered yes while the power was being cut"


class Outcome(enum.StrEnum):
    """How an invoked operation completed."""

    OK = "ok"
    FAIL = "fail"
    UNKNOWN = "unknown"


class Kind(enum.StrEnum):
    """What an operation asks for."""

    RESERVE = "reserve"
    LOCK = "lock"  # with the key of a reservation, or (REST) without: a free resource
    RENEW = "renew"
    RELEASE = "release"
    FORCE = "force"  # the checker's forced release of a hold nobody knows the key of


@dataclass
class Op:
    """One operation: what was asked, and (once completed) what came of it.

    ``holder`` is the holder URL it names, unique to each take, so a hold the
    agent shows is traced back to the operation that made it. ``key`` is the
    key it sent, or the one its answer carried. ``expires`` is the deadline
    the answer told (seconds since the epoch), if any.
    """

    index: int
    client: str
    via: str  # "jsonrpc" or "rest"
    kind: Kind
    resource: str
    holder: str
    key: str | None
    invoked: float  # time.monotonic()
    completed: float | None = None
    outcome: Outcome | None = None
    code: int | None = None
    expires: float | None = None
    message: str = ""
    takes: bool = False  # it makes a new hold: a reservation, or a lock without a key


@dataclass
class History:
    """Every operation of a run, in invocation order; thread-safe."""

    ops: list[Op] = field(default_factory=list)
    kills: list[float] = field(default_factory=list)  # when the agent was killed
    # Called with each completed operation, on its client's thread (a fault may follow it).
    on_complete: Callable[[Op], None] | None = None
    # Set when an emulated power cut begins, cleared at the restart: a yes that arrives
    # meanwhile is of unknown outcome. A real cut is instantaneous; the emulation (a
    # shutdown ioctl) takes milliseconds, and an fsync that returns during them may be
    # lost (docs/reliability.md#power-cut) -- a yes a real power cut never lets out.
    doubt_from: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def invoke(
        self,
        client: str,
        via: str,
        kind: Kind,
        resource: str,
        holder: str,
        *,
        key: str | None = None,
    ) -> Op:
        """Record an operation as invoked now."""
        with self._lock:
            op = Op(len(self.ops), client, via, kind, resource, holder, key, time.monotonic())
            op.takes = kind is Kind.RESERVE or (kind is Kind.LOCK and key is None)
            self.ops.append(op)
            return op

    def complete(
        self,
        op: Op,
        outcome: Outcome,
        *,
        code: int | None = None,
        key: str | None = None,
        expires: float | None = None,
        message: str = "",
    ) -> None:
        """Record how ``op`` completed."""
        with self._lock:
            op.completed = time.monotonic()
            if outcome is Outcome.OK and self.doubt_from is not None:
                outcome, message = Outcome.UNKNOWN, DOUBTED
            op.outcome = outcome
            op.code = code
            op.key = key if key is not None else op.key
            op.expires = expires
            op.message = message
        if self.on_complete is not None:
            self.on_complete(op)

    def killed(self) -> list[Op]:
        """The agent is being killed now; answers the operations in flight."""
        with self._lock:
            self.kills.append(time.monotonic())
            return [op for op in self.ops if op.outcome is None]

    def pending(self) -> list[Op]:
        """Operations invoked and not completed yet."""
        with self._lock:
            return [op for op in self.ops if op.outcome is None]

    def settle(self) -> None:
        """Whatever is still in flight (its client gave up) is of unknown outcome."""
        with self._lock:
            now = time.monotonic()
            for op in self.ops:
                if op.outcome is None:
                    op.outcome, op.completed = Outcome.UNKNOWN, now

    def count(self, outcome: Outcome) -> int:
        """How many operations completed so."""
        with self._lock:
            return sum(op.outcome is outcome for op in self.ops)
