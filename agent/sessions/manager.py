"""Sessions: a resource prepared for one lock and cleaned after it, like a one-shot executor.

A sink of lock events plus a gate. When a lock is committed on a resource that
a ``[[session]]`` table matches, the registry has already marked it
``provisioning``; this runs the provisioning steps and reports the outcome
(``Authority.provisioned``). When the lock ends, the registry marks it
``cleaning`` -- no one can reserve it -- and this runs the teardown steps, after
which it is free again (``Authority.cleaned``) or, if teardown failed, faulty.

The gate is ``lock``: it takes the lock and waits for provisioning up to the
table's ``lock_wait``; a provisioning that failed in that time releases the
resource and refuses the lock, naming the failed step and its last lines.

The phases are in the store with the resource, so a restart never leaves one
behind: provisioning that was running has failed (the resource is released
and cleaned), teardown that was running starts again from the first step.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from agent.authority import UNSAVED, Authority
from agent.config import parse_hostport
from agent.config.sessions import SessionRule, Step, UninstallNewPackages, rule_for
from agent.events import EventBus
from agent.lifecycle import Service
from agent.model import (
    HOLD_ENDING,
    Code,
    EndReason,
    Event,
    EventType,
    Hold,
    Holder,
    Kind,
    Phase,
    Refused,
    Resource,
)
from agent.sessions.journal import Journal, Live, Record, Status
from agent.sessions.phone import AdbLink
from agent.sessions.steps import StepContext, StepFailed, list_packages, run_step

log = logging.getLogger(__name__)

Recover = Callable[[str, str, Callable[[str], None]], Awaitable[bool]]

TAIL = 5  # output lines a refused Lock quotes
PACKAGES_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a provisioning ended."""

    ok: bool
    step: str | None = None
    message: str | None = None
    tail: tuple[str, ...] = ()


@dataclass
class _Provisioning:
    live: Live
    key: str
    done: asyncio.Future[Outcome]
    task: asyncio.Task[None] | None = None


class Sessions(Service):
    """Runs every resource's sessions; ``lock`` is the gate the API locks through."""

    def __init__(
        self,
        authority: Authority,
        bus: EventBus,
        journal: Journal,
        rules: Sequence[SessionRule],
        *,
        adb_server: str | None,
        identity: str,
        timeout: float = 10.0,
        recover: Recover | None = None,
    ) -> None:
        # recover(id, why, say): bring a stuck phone back (agent/recovery); True once it is.
        self._authority = authority
        self._bus = bus
        self.journal = journal
        self._rules = list(rules)
        self._own = Holder(identity, "resource-agent: cleaning after a restart")
        self._client: AdbLink | None = None
        self._adb_env: dict[str, str] = {}
        if adb_server is not None:
            host, port = parse_hostport(adb_server)
            self._client = AdbLink(host, port, timeout)
            self._adb_env = {"ANDROID_ADB_SERVER_PORT": str(port)}
        self._provisioning: dict[str, _Provisioning] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._recover = recover

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Follow the bus, then finish what a stopped agent left half done."""
        await self.journal.open()
        self._unsubscribe = self._bus.subscribe(self._on_event)
        for res in self._authority.registry.resources():
            if res.phase is Phase.PROVISIONING and res.hold is not None:
                await self._fail_after_restart(res, res.hold)
            elif res.phase is Phase.CLEANING:
                self._spawn(self._teardown(res, None, None), f"teardown {res.id}")

    async def stop(self) -> None:
        """Stop every session where it is; the store says where for the next start."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.journal.close()

    def rule(self, res: Resource) -> SessionRule | None:
        """The ``[[session]]`` table for ``res``, or None."""
        return rule_for(self._rules, res)

    # ------------------------------------------------------------------ gate

    async def lock(
        self,
        resource_id: str,
        key: str | None,
        holder: Holder,
        lease: float | None = None,
        *,
        reserved_first: bool = False,
        wait: float | None = None,
    ) -> Hold:
        """Lock, then wait for provisioning up to ``wait`` (None: the table's ``lock_wait``).

        Provisioning that failed within the wait releases the resource and
        refuses the lock (PROVISIONING_FAILED); one that takes longer leaves
        the lock in place and the resource ``provisioning``.
        """
        hold = await self._authority.lock(
            resource_id, key, holder, lease, reserved_first=reserved_first
        )
        run = self._provisioning.get(resource_id)
        if run is None or run.key != hold.key:
            return hold
        rule = self.rule(self._authority.registry.get(resource_id))
        limit = wait if wait is not None else (rule.lock_wait if rule is not None else 0.0)
        try:
            outcome = await asyncio.wait_for(asyncio.shield(run.done), limit)
        except TimeoutError:
            return hold
        if outcome.ok:
            return hold
        await self._release_failed(resource_id, hold.key)
        raise Refused(Code.PROVISIONING_FAILED, refusal(resource_id, outcome))

    async def _release_failed(self, resource_id: str, key: str) -> None:
        """Release a lock whose provisioning failed; if the disk refuses, keep trying."""
        try:
            await self._authority.release(resource_id, key, ended=EndReason.PROVISIONING_FAILED)
        except Refused as refused:  # released meanwhile: nothing left to undo
            if refused.code in UNSAVED:
                let_go = self._authority.let_go(resource_id, key, EndReason.PROVISIONING_FAILED)
                self._spawn(let_go, f"release {resource_id}")

    def session_of(self, resource_id: str, key: str) -> str | None:
        """The id of the session provisioning the lock held with ``key``, if any."""
        run = self._provisioning.get(resource_id)
        return run.live.record.id if run is not None and run.key == key else None

    # ---------------------------------------------------------------- events

    def _on_event(self, event: Event) -> None:
        res = event.resource
        if event.type is EventType.LOCKED and res.phase is Phase.PROVISIONING:
            assert event.hold is not None
            self._begin_provisioning(res, event.hold)
        elif event.type in HOLD_ENDING and res.phase is Phase.CLEANING:
            run = self._provisioning.pop(res.id, None)
            previous = run.task if run is not None else None
            live = run.live if run is not None else None
            self._spawn(self._teardown(res, live, previous), f"teardown {res.id}")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---------------------------------------------------------- provisioning

    def _begin_provisioning(self, res: Resource, hold: Hold) -> None:
        live = self.journal.begin(res.id, hold.holder, Status.PROVISIONING)
        run = _Provisioning(live, hold.key, asyncio.get_running_loop().create_future())
        self._provisioning[res.id] = run
        run.task = self._spawn(self._provision(res, run), f"provision {res.id}")

    async def _provision(self, res: Resource, run: _Provisioning) -> None:
        live, rule = run.live, self.rule(res)
        ctx = self._context(res, "provision", live)
        outcome = Outcome(True)
        try:
            if rule is not None:
                await self._record_packages(res, rule, ctx, live)
                outcome = await self._steps(rule.provision, ctx, live, stop_at_failure=True)
        except asyncio.CancelledError:
            self._finish(run, Outcome(False, None, "stopped: released, or the agent stopped"))
            raise
        except StepFailed as exc:
            self.journal.line(live, f"cannot start: {exc.message}")
            outcome = Outcome(False, "start", exc.message, tuple(live.tail(TAIL)))
        except Exception as exc:  # a bug must not leave the resource provisioning for ever
            log.exception("provisioning %s failed", res.id)
            outcome = Outcome(False, None, f"internal error: {exc!r}")
        quarantine_after = rule.quarantine_after if rule is not None else 1
        failure = None if outcome.ok else refusal(res.id, outcome)
        try:
            # On disk before the Lock is answered: a restart takes a resource still
            # "provisioning" for a provisioning it cut short, and fails it.
            await self._authority.provisioned(res.id, run.key, failure, quarantine_after)
        except asyncio.CancelledError:
            self._finish(run, Outcome(False, None, "stopped: the agent stopped"))
            raise
        self._finish(run, outcome)

    def _finish(self, run: _Provisioning, outcome: Outcome) -> None:
        status = Status.READY if outcome.ok else Status.FAILED
        self.journal.line(run.live, f"provisioning {'done' if outcome.ok else 'FAILED'}")
        self.journal.update(
            run.live, status=status, failed_step=outcome.step, message=outcome.message
        )
        if not run.done.done():
            run.done.set_result(outcome)

    async def _record_packages(
        self, res: Resource, rule: SessionRule, ctx: StepContext, live: Live
    ) -> None:
        # What teardown keeps is what was there before the holder came.
        if res.kind is Kind.ANDROID and any(
            isinstance(s, UninstallNewPackages) for s in rule.teardown
        ):
            packages = await list_packages(ctx, PACKAGES_TIMEOUT)
            ctx.packages = packages
            self.journal.update(live, packages=frozenset(packages))
            self.journal.line(live, f"{len(packages)} third-party packages installed now")

    async def _fail_after_restart(self, res: Resource, hold: Hold) -> None:
        live = await self._resume_or_begin(res, hold.holder, Status.PROVISIONING)
        outcome = Outcome(False, None, "the agent restarted during provisioning")
        self.journal.line(live, "the agent restarted during provisioning: it failed")
        self.journal.update(live, status=Status.FAILED, message=outcome.message)
        # Released as a NO would: the RELEASED event starts the teardown.
        await self._release_failed(res.id, hold.key)

    # -------------------------------------------------------------- teardown

    async def _teardown(
        self, res: Resource, live: Live | None, previous: asyncio.Task[None] | None
    ) -> None:
        if previous is not None and not previous.done():
            previous.cancel()
            await asyncio.gather(previous, return_exceptions=True)
        if live is None:
            live = await self._resume_or_begin(res, self._own, Status.CLEANING)
        self.journal.update(live, status=Status.CLEANING)
        rule = self.rule(res)
        ctx = self._context(res, "teardown", live)
        outcome = Outcome(True)
        try:
            if rule is not None:
                outcome = await self._steps(rule.teardown, ctx, live, stop_at_failure=False)
        except Exception as exc:  # a bug must not leave the resource cleaning for ever
            log.exception("teardown of %s failed", res.id)
            outcome = Outcome(False, None, f"internal error: {exc!r}")
        self.journal.line(live, f"teardown {'done' if outcome.ok else 'FAILED'}")
        status = Status.CLEAN if outcome.ok else Status.DIRTY
        self.journal.update(live, status=status, failed_step=outcome.step, message=outcome.message)
        failure = None if outcome.ok else f"teardown step {outcome.step} failed: {outcome.message}"
        await self._authority.cleaned(res.id, failure)

    async def _resume_or_begin(self, res: Resource, holder: Holder, status: Status) -> Live:
        """The resource's last session from the store, or a new one."""
        last: list[Record] = await self.journal.find(resource_id=res.id, limit=1)
        if last and last[0].status not in (Status.CLEAN, Status.DIRTY):
            return await self.journal.resume(last[0])
        return self.journal.begin(res.id, holder, status)

    # ----------------------------------------------------------------- steps

    def _context(self, res: Resource, phase: str, live: Live) -> StepContext:
        packages = live.record.packages
        return StepContext(
            resource=res,
            phase=phase,
            log=lambda text: self.journal.line(live, text),
            client=self._client if res.kind is Kind.ANDROID else None,
            packages=set(packages) if packages is not None else None,
            extra_env=dict(self._adb_env),
        )

    async def _steps(
        self, steps: Sequence[Step], ctx: StepContext, live: Live, *, stop_at_failure: bool
    ) -> Outcome:
        """Run ``steps`` in order; the first failure is the outcome's.

        In provisioning, a step that fails because the phone stopped answering
        asks for the phone to be recovered (the holder's session asks, so its
        lock does not stop the ladder) and, once it is back, runs again.
        """
        first: Outcome | None = None
        for step in steps:
            failed = await self._step(step, ctx, live)
            if (
                isinstance(failed, StepFailed)
                and failed.unresponsive
                and stop_at_failure
                and self._recover is not None
            ) and await self._recover(
                ctx.resource.id, failed.message, partial(self.journal.line, live)
            ):
                failed = await self._step(step, ctx, live)
            if failed is None:
                continue
            message = (
                failed.message if isinstance(failed, StepFailed) else f"internal error: {failed!r}"
            )
            if first is None:
                first = Outcome(False, step.label, message, tuple(live.tail(TAIL + 1)[:-1]))
            if stop_at_failure:
                break
        return first or Outcome(True)

    async def _step(self, step: Step, ctx: StepContext, live: Live) -> Exception | None:
        """Run one step and log how it went; the failure, or None."""
        label = step.label
        self.journal.line(live, f"step {label}: start")
        began = time.monotonic()
        try:
            await run_step(step, ctx)
        except StepFailed as exc:
            took = time.monotonic() - began
            self.journal.line(live, f"step {label}: FAILED after {took:.1f} s: {exc.message}")
            return exc
        except Exception as exc:  # a bug in a step must not leave the resource stuck
            log.exception("session step %s on %s failed", label, ctx.resource.id)
            self.journal.line(live, f"step {label}: FAILED: internal error {exc!r}")
            return exc
        self.journal.line(live, f"step {label}: ok ({time.monotonic() - began:.1f} s)")
        return None


def refusal(resource_id: str, outcome: Outcome) -> str:
    """Why provisioning failed, for a refused Lock and the resource's fault."""
    where = f" at step {outcome.step}" if outcome.step else ""
    text = f"provisioning {resource_id} failed{where}: {outcome.message}"
    if outcome.tail:
        text += " -- last output: " + " | ".join(line.split(" ", 1)[-1] for line in outcome.tail)
    return text
