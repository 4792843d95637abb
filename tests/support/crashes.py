"""Rounds of load, a fault, a restart and a check: the crash-safety run, reusable.

``CrashRun`` drives one agent process (tests/agentproc.py) with a ``Loader``
and, each round, cuts it short at a chosen moment -- any time under load, while
a Lock waits for a session's provisioning, or while a session's teardown runs
-- with a fault (SIGKILL by default; the power-cut test also drops what was not
on disk), starts it again on the same state and checks it with the
``Checker``. ``Report`` counts what was done and found; tests assert on it,
bench/faults.py prints it.

The agent it needs: static resources ``RESOURCES`` (``SESSIONS`` of them with a
``[[session]]`` whose provisioning and teardown run a command for
``STEP_SECONDS``), as ``agent_config`` gives them.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.agentproc import AgentProcess
from tests.support.checker import Checker, State, fold
from tests.support.history import History, Kind, Op, Outcome
from tests.support.loader import Loader

RESOURCES = [f"r{i}" for i in range(6)] + ["s0", "s1"]
SESSIONS = ["s0", "s1"]
STEP_SECONDS = 0.3  # each session step: a kill within this after a release hits the teardown
WAIT_FOR_MOMENT = 5.0  # seconds to wait for a provisioning or teardown to kill in


def agent_config() -> dict[str, Any]:
    """The resources and sessions a ``CrashRun`` agent needs (AgentProcess keywords)."""
    step = {"step": "command", "run": ["sleep", str(STEP_SECONDS)]}
    resources = [
        {"id": rid, "metadata": {"pool": "session" if rid in SESSIONS else "plain"}}
        for rid in RESOURCES
    ]
    session = {"kind": "static", "when": {"pool": "session"}, "lock_wait": 60,
               "provision": [step], "teardown": [step]}  # fmt: skip
    return {"resources": resources, "config": {"session": [session]}}


@dataclass
class Report:
    """What a run did and found."""

    rounds: int = 0
    kills: int = 0
    in_flight: int = 0  # kills with at least one call in flight
    group: int = 0  # kills with several calls in flight: a group commit under way
    provisioning: int = 0  # kills while a Lock waited on provisioning
    teardown: int = 0  # kills while a teardown ran
    answered: int = 0  # kills the instant a Lock was answered after provisioning
    ops: int = 0
    ok: int = 0
    refused: int = 0
    unknown: int = 0
    holds: int = 0
    probes: int = 0
    released: int = 0  # live holds released with their keys at the end
    recovery: list[float] = field(default_factory=list)  # kill to answering, seconds
    violations: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One paragraph of figures."""
        rec = sorted(self.recovery) or [0.0]
        return (
            f"{self.rounds} rounds, {self.kills} faults ({self.in_flight} with calls in flight, "
            f"{self.group} with several: group commits; {self.provisioning} during "
            f"provisioning, {self.teardown} during teardown, {self.answered} as a Lock was "
            f"answered after provisioning); {self.ops} operations "
            f"({self.ok} ok, {self.refused} refused, {self.unknown} cut short), {self.holds} "
            f"holds, {self.probes} key probes, {self.released} live keys used at the end; "
            f"recovery median {statistics.median(rec):.2f} s, max {rec[-1]:.2f} s; "
            f"violations {len(self.violations)}"
        )


def sigkill(agent: AgentProcess) -> None:
    """The default fault: SIGKILL, no chance to clean up."""
    agent.kill()


class CrashRun:
    """Rounds of load, fault, restart and check on ``agent``."""

    def __init__(
        self,
        agent: AgentProcess,
        *,
        seed: int,
        clients: int = 12,
        fault: Callable[[AgentProcess], None] = sigkill,
        restart: Callable[[AgentProcess], object] = AgentProcess.start,
        deadlines: bool = True,
    ) -> None:
        self.agent = agent
        self.rng = random.Random(seed)
        self.history = History()
        self.loader = Loader(RESOURCES, self.history, clients=clients, seed=seed)
        self.checker = Checker(self.history, SESSIONS, deadlines=deadlines)
        self.fault = fault
        self.restart = restart
        self.report = Report()

    def round(self, moment: str = "any") -> None:
        """Load, a fault at ``moment``, restart, check.

        ``moment``: any (a random time), provisioning (a Lock waits on it),
        teardown (one runs), answered (the instant a Lock's answer after
        provisioning arrives: the agent's bookkeeping may still be on its way).
        """
        report = self.report
        answered = threading.Event()
        if moment == "answered":
            self.history.on_complete = lambda op: self._at_answer(op, answered)
        self.loader.start(self.agent.url)
        if moment == "answered" and answered.wait(WAIT_FOR_MOMENT):
            hit = {"answered"}
        else:
            hit = self._wait_for(moment)
        self.history.on_complete = None
        flying = self.history.killed()
        cut = time.monotonic()
        self.fault(self.agent)
        self.loader.stop()
        report.kills += 1
        report.in_flight += bool(flying)
        report.group += len(flying) > 1
        report.provisioning += "provisioning" in hit
        report.teardown += "teardown" in hit
        report.answered += "answered" in hit
        self.restart(self.agent)
        report.recovery.append(time.monotonic() - cut)
        self.check()
        self.checker.cleanup(self.agent.url)

    def check(self) -> None:
        """The checker's verdict now, added to the report."""
        verdict = self.checker.check(self.agent.url, time.monotonic())
        report = self.report
        report.rounds += 1
        report.ops, report.holds = verdict.ops, verdict.holds
        report.probes += verdict.probes
        report.violations += [v for v in verdict.violations if v not in report.violations]
        report.violations += [v for v in self.loader.violations if v not in report.violations]
        report.ok = self.history.count(Outcome.OK)
        report.refused = self.history.count(Outcome.FAIL)
        report.unknown = self.history.count(Outcome.UNKNOWN)

    def finish(self) -> Report:
        """A last round that stops the clients first, then every live key must still work.

        Nothing is in flight at this fault: every hold the clients have was
        acknowledged, and each must be released with its key after the restart.
        """
        self.loader.start(self.agent.url)
        time.sleep(0.3)
        self.loader.stop()
        self.fault(self.agent)
        self.report.kills += 1
        self.restart(self.agent)
        self.check()
        models, _ = fold(self.history, SESSIONS)
        for model in models:
            if model.state is not State.LIVE or model.key is None:
                continue
            op = self.history.invoke("checker", "rest", Kind.RELEASE, model.resource, "",
                                     key=model.key)  # fmt: skip
            resp = self.agent.post(f"/api/resources/{model.resource}/release", {"key": model.key})
            self.history.complete(op, Outcome.OK if resp.status == 200 else Outcome.FAIL)
            if resp.status != 200:
                self.report.violations.append(
                    f"{model.resource}: the key of a live hold does not release it: "
                    f"HTTP {resp.status} {resp.body[:200]!r}"
                )
            self.report.released += resp.status == 200
        return self.report

    def _at_answer(self, op: Op, answered: threading.Event) -> None:
        """On a client's thread: a session's Lock was just answered OK: kill now."""
        lock = op.kind is Kind.LOCK and op.resource in SESSIONS and op.outcome is Outcome.OK
        if lock and not answered.is_set() and self.agent.running():
            os.kill(self.agent.pid, signal.SIGKILL)
            answered.set()

    def _wait_for(self, moment: str) -> set[str]:
        """Wait for ``moment`` under load (at most WAIT_FOR_MOMENT s); answers what it found."""
        if moment == "any":
            time.sleep(self.rng.uniform(0.1, 0.6))
            return self._now()
        deadline = time.monotonic() + WAIT_FOR_MOMENT
        while time.monotonic() < deadline:
            if moment in self._now():
                time.sleep(self.rng.uniform(0, 0.1))
                return self._now()
            time.sleep(0.005)
        return self._now()

    def _now(self) -> set[str]:
        """What the sessions are doing now, as the clients' calls show it (both at once, often)."""
        doing = set()
        pending = self.history.pending()
        if any(op.kind is Kind.LOCK and op.resource in SESSIONS for op in pending):
            doing.add("provisioning")
        now = time.monotonic()
        if any(_released(op, now) for op in reversed(self.history.ops[-50:])):
            doing.add("teardown")
        return doing


def _released(op: Op, now: float) -> bool:
    """A session resource's release acknowledged so recently that its teardown still runs."""
    return (
        op.kind is Kind.RELEASE
        and op.resource in SESSIONS
        and op.outcome is Outcome.OK
        and op.completed is not None
        and now - op.completed < STEP_SECONDS * 0.8
    )
