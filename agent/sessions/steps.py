"""What each session step does, and when it counts as failed.

Android steps talk to the phone through ``phone`` in a worker thread, never on
the event loop; ``command`` steps run a program (``command``). Every step is
bounded by its ``timeout``. A failure is a ``StepFailed`` whose message says
what went wrong in words for the build log; ``unresponsive`` marks the
failures where the phone itself stopped answering (a stuck phone, not a
policy that said no).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from agent.android import parse_battery, parse_packages
from agent.config.sessions import (
    Battery,
    BootCompleted,
    ClearLogcat,
    Command,
    Reboot,
    Step,
    UninstallNewPackages,
    UnlockScreen,
)
from agent.model import Kind, Resource, locked_environment
from agent.sessions import phone
from agent.sessions.command import CommandFailed, run_command
from agent.sessions.phone import AdbLink, PhoneError, ServerDown

T = TypeVar("T")

POLL = 1.0  # seconds between looks at a phone that is still booting
# What a command step must not inherit from the agent's own environment.
PRIVATE_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "CREDENTIALS_DIRECTORY",
               "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "INVOCATION_ID")  # fmt: skip
# Substrings of ``dumpsys window`` that mean a keyguard is still up.
KEYGUARD_UP = ("mDreamingLockscreen=true", "mShowingLockscreen=true", "isStatusBarKeyguard=true")


class StepFailed(Exception):
    """A step did not succeed; ``unresponsive`` when the phone itself stopped answering."""

    def __init__(self, message: str, unresponsive: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.unresponsive = unresponsive


@dataclass
class StepContext:
    """What a step works on."""

    resource: Resource
    phase: str  # "provision" or "teardown", as SESSION_PHASE says
    log: Callable[[str], None]
    client: AdbLink | None = None  # the adb server, for phones
    packages: set[str] | None = None  # third-party packages when the session started
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def serial(self) -> str:
        """The phone's adb serial (its resource id)."""
        return self.resource.id


def environment(ctx: StepContext) -> dict[str, str]:
    """A command step's environment: the agent's minus its secrets, plus the resource."""
    env = {k: v for k, v in os.environ.items() if k not in PRIVATE_ENV}
    env.update(locked_environment(ctx.resource.id, ctx.resource.metadata))
    env.update(ctx.extra_env)
    env["RESOURCE_ID"] = ctx.resource.id
    env["RESOURCE_KIND"] = ctx.resource.kind.value
    env["SESSION_PHASE"] = ctx.phase
    if ctx.resource.kind is Kind.ANDROID:
        env["ANDROID_SERIAL"] = ctx.serial
    return env


async def _on_phone(ctx: StepContext, fn: Callable[..., T], *args: object) -> T:
    if ctx.client is None:
        raise StepFailed("this step needs adb, and [adb] is not enabled")
    try:
        return await asyncio.to_thread(fn, ctx.client, ctx.serial, *args)
    except ServerDown as exc:
        raise StepFailed(str(exc)) from exc
    except PhoneError as exc:
        raise StepFailed(str(exc), unresponsive=True) from exc


async def sh(ctx: StepContext, command: str, timeout: float) -> phone.ShellResult:
    """Run ``command`` on the phone; its output goes to the log."""
    result = await _on_phone(ctx, phone.shell, command, timeout)
    for line in result.output.splitlines():
        ctx.log(line)
    return result


async def list_packages(ctx: StepContext, timeout: float) -> set[str]:
    """The phone's third-party packages now."""
    result = await _on_phone(ctx, phone.shell, "pm list packages -3", timeout)
    if result.returncode != 0:
        raise StepFailed(f"pm list packages -3 exited with status {result.returncode}")
    return parse_packages(result.output)


async def _boot_completed(ctx: StepContext, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    answer = ""
    while True:
        left = deadline - time.monotonic()
        try:
            result = await _on_phone(ctx, phone.shell, "getprop sys.boot_completed", max(left, 1))
            answer = result.output.strip()
        except StepFailed as exc:
            if not exc.unresponsive:
                raise  # the adb server is away: no use waiting for the phone
            answer = exc.message
        if answer == "1":
            ctx.log("sys.boot_completed is 1")
            return
        if time.monotonic() + POLL > deadline:
            raise StepFailed(
                f"the phone did not finish booting in {timeout:g} s "
                f"(sys.boot_completed: {answer or 'empty'})",
                unresponsive=True,
            )
        await asyncio.sleep(POLL)


async def _battery(ctx: StepContext, step: Battery) -> None:
    result = await sh(ctx, "dumpsys battery", step.timeout)
    try:
        level = parse_battery(result.output)
    except ValueError as exc:
        raise StepFailed(f"cannot read the battery: {exc}") from exc
    if level < step.min:
        raise StepFailed(f"the battery is at {level}%, below the {step.min}% this session needs")
    ctx.log(f"battery at {level}% (at least {step.min}% needed)")


async def _unlock(ctx: StepContext, timeout: float) -> None:
    await sh(ctx, "input keyevent KEYCODE_WAKEUP", timeout)
    await sh(ctx, "wm dismiss-keyguard", timeout)
    window = await _on_phone(ctx, phone.shell, "dumpsys window", timeout)
    if any(mark in window.output for mark in KEYGUARD_UP):
        raise StepFailed(
            "the keyguard is still up: it needs a credential (PIN, pattern or password), "
            "which unlock-screen does not enter; remove the screen lock on this phone"
        )
    ctx.log("screen awake and unlocked")


async def _uninstall(ctx: StepContext, step: UninstallNewPackages) -> None:
    if ctx.packages is None:
        raise StepFailed("the package list of the session's start is unknown")
    now = await list_packages(ctx, step.timeout)
    new = sorted(now - ctx.packages - set(step.keep))
    if not new:
        ctx.log("no package was installed during the session")
    failed = []
    for package in new:
        result = await sh(ctx, f"pm uninstall {package}", step.timeout)
        if result.returncode != 0 or "Success" not in result.output:
            failed.append(package)
    if failed:
        raise StepFailed(f"could not uninstall {', '.join(failed)}")
    if new:
        ctx.log(f"uninstalled {', '.join(new)}")


async def _reboot(ctx: StepContext, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    await _on_phone(ctx, phone.reboot, timeout)
    ctx.log("rebooting")
    await _on_phone(ctx, phone.wait_state, "disconnect", timeout)
    await _on_phone(ctx, phone.wait_state, "device", max(deadline - time.monotonic(), 1))
    ctx.log("adb sees the phone again")
    await _boot_completed(ctx, max(deadline - time.monotonic(), 1))


async def run_step(step: Step, ctx: StepContext) -> None:
    """Do one step; StepFailed says why it did not succeed."""
    async with asyncio.timeout(step.timeout + 5):  # each call has its own bound; this is the net
        if isinstance(step, Command):
            try:
                await run_command(step.run, environment(ctx), step.timeout, ctx.log)
            except CommandFailed as exc:
                raise StepFailed(str(exc)) from exc
        elif isinstance(step, BootCompleted):
            await _boot_completed(ctx, step.timeout)
        elif isinstance(step, Battery):
            await _battery(ctx, step)
        elif isinstance(step, UnlockScreen):
            await _unlock(ctx, step.timeout)
        elif isinstance(step, UninstallNewPackages):
            await _uninstall(ctx, step)
        elif isinstance(step, ClearLogcat):
            result = await sh(ctx, "logcat -c", step.timeout)
            if result.returncode != 0:
                raise StepFailed(f"logcat -c exited with status {result.returncode}")
        elif isinstance(step, Reboot):
            await _reboot(ctx, step.timeout)
