"""Sessions against the real adb server and fake phones, on the agent's real core.

The core is built as the daemon builds it (build_core) with a Sessions service
in front; locks go through its gate, as JSON-RPC and REST do.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from agent.config.sessions import SessionRule, rule_for
from agent.core import STATE_FILE, Core
from agent.model import (
    Code,
    Description,
    FaultKind,
    Kind,
    Phase,
    Refused,
    ResourceState,
)
from agent.sessions.journal import Journal, Status
from agent.sessions.manager import Sessions
from tests.fakes.adb_server import AdbServer
from tests.fakes.adbd import FakeAdbd
from tests.support.core import core_harness
from tests.support.holders import BUILD, PERSON, QUEUED
from tests.support.waiting import until
from tests.support.writer_gate import Gate

IDENTITY = "resource-agent://test"


def rule(**table: Any) -> SessionRule:
    return SessionRule.model_validate({"kind": "android", **table})


@contextlib.asynccontextmanager
async def agent_with(
    state: Path, rules: Sequence[SessionRule], adb: AdbServer | None
) -> AsyncIterator[tuple[Core, Sessions]]:
    async with core_harness(
        state, needs_session=lambda res: rule_for(rules, res) is not None
    ) as core:
        sessions = Sessions(
            core.authority,
            core.bus,
            Journal(core.store),
            rules,
            adb_server=adb.address if adb is not None else None,
            identity=IDENTITY,
        )
        async with sessions:
            yield core, sessions


def add_phone(core: Core, phone: FakeAdbd) -> str:
    core.authority.describe(
        Description(phone.serial, "Pixel 7", Kind.ANDROID, metadata={"model": "Pixel 7"})
    )
    return phone.serial


@pytest.fixture
def connected(adb_server: AdbServer, phones: Callable[..., FakeAdbd]) -> Callable[..., FakeAdbd]:
    def make(**kwargs: Any) -> FakeAdbd:
        phone = phones(**kwargs)
        adb_server.connect(phone.serial)
        return phone

    return make


async def log_of(sessions: Sessions, rid: str) -> str:
    [record] = await sessions.journal.find(resource_id=rid, limit=1)
    return "\n".join(await sessions.journal.lines(record.id))


PROVISION = [
    {"step": "boot-completed", "timeout": 20},
    {"step": "battery", "min": 30},
    {"step": "unlock-screen"},
    {"step": "command", "name": "check", "run": ["sh", "-c", "echo serial=$ANDROID_SERIAL"]},
]


async def test_provisioning_runs_every_step_before_the_lock_is_answered(
    tmp_path: Path, adb_server: AdbServer, connected: Callable[..., FakeAdbd]
) -> None:
    phone = connected()
    phone.keyguard = True
    async with agent_with(tmp_path, [rule(provision=PROVISION)], adb_server) as (core, sessions):
        rid = add_phone(core, phone)
        hold = await sessions.lock(rid, None, PERSON)
        res = core.registry.get(rid)
        assert res.state is ResourceState.LOCKED and res.phase is None
        assert phone.keyguard is False and "KEYCODE_WAKEUP" in phone.keyevents
        text = await log_of(sessions, rid)
        for label in ("boot-completed", "battery", "unlock-screen", "check"):
            assert f"step {label}: ok" in text, text
        assert f"serial={phone.serial}" in text and "battery at 85%" in text
        [record] = await sessions.journal.find(resource_id=rid)
        assert record.status is Status.READY and record.holder == PERSON
        await core.authority.release(rid, hold.key)


async def test_a_failing_step_refuses_the_lock_naming_the_step_and_its_output(
    tmp_path: Path, adb_server: AdbServer, connected: Callable[..., FakeAdbd]
) -> None:
    phone = connected(battery=12)
    steps = [
        {"step": "command", "name": "greet", "run": ["sh", "-c", "echo preparing"]},
        {"step": "battery", "min": 30},
        {"step": "command", "name": "never", "run": ["true"]},
    ]
    async with agent_with(tmp_path, [rule(provision=steps)], adb_server) as (core, sessions):
        rid = add_phone(core, phone)
        reservation = await core.authority.reserve(rid, 60, QUEUED)
        with pytest.raises(Refused) as info:
            await sessions.lock(rid, reservation.key, BUILD, reserved_first=True)
        assert info.value.code is Code.PROVISIONING_FAILED
        message = info.value.message
        assert "at step battery" in message and "below the 30%" in message, message
        assert "level: 12" in message, message  # the step's last output lines
        # Released (then cleaned): the next build can have it.
        await until(lambda: core.registry.get(rid).state is ResourceState.FREE, what="free")
        assert "step never" not in await log_of(sessions, rid)


async def test_a_slow_provisioning_answers_at_lock_wait_and_fails_later(
    tmp_path: Path, adb_server: AdbServer, connected: Callable[..., FakeAdbd]
) -> None:
    phone = connected()
    steps = [{"step": "command", "name": "slow", "run": ["sh", "-c", "sleep 1; exit 4"]}]
    table = rule(provision=steps, lock_wait=0)
    async with agent_with(tmp_path, [table], adb_server) as (core, sessions):
        rid = add_phone(core, phone)
        hold = await sessions.lock(rid, None, PERSON)
        assert core.registry.get(rid).state is ResourceState.PROVISIONING
        await until(lambda: core.registry.get(rid).phase is None, what="provisioning to end")
        res = core.registry.get(rid)
        # Failed, but the holder keeps its lock until it releases.
        assert res.state is ResourceState.LOCKED and res.hold == hold and res.failures == 1
        [record] = await sessions.journal.find(resource_id=rid)
        assert record.status is Status.FAILED and record.failed_step == "slow"
        assert record.message == "sh exited with status 4"


async def test_quarantine_after_failures_in_a_row_and_enable_resets_it(
    tmp_path: Path, adb_server: AdbServer, connected: Callable[..., FakeAdbd]
) -> None:
    phone = connected(battery=5)
    table = rule(provision=[{"step": "battery", "min": 50}], quarantine_after=2)
    async with agent_with(tmp_path, [table], adb_server) as (core, sessions):
        rid = add_phone(core, phone)
        for _ in range(2):
            await until(lambda: core.registry.get(rid).state is ResourceState.FREE, what="free")
            with pytest.raises(Refused):
                await sessions.lock(rid, None, PERSON)
        await until(lambda: core.registry.get(rid).phase is None, what="teardown")
        res = core.registry.get(rid)
        assert res.state is ResourceState.QUARANTINED and not res.available
        assert res.fault is not None and res.fault.kind is FaultKind.QUARANTINED
        with pytest.raises(Refused) as info:
            await sessions.lock(rid, None, PERSON)
        assert info.value.code is Code.QUARANTINED
        await core.authority.enable(rid)
        res = core.registry.get(rid)
        assert res.state is ResourceState.FREE and res.failures == 0


async def test_teardown_uninstalls_only_what_the_session_installed(
    tmp_path: Path, adb_server: AdbServer, connected: Callable[..., FakeAdbd]
) -> None:
    phone = connected()
    phone.packages = {"com.lab.tools", "com.lab.keep"}
    teardown = [{"step": "uninstall-new-packages", "keep": ["com.build.keepme"]}]
    async with agent_with(tmp_path, [rule(teardown=teardown)], adb_server) as (core, sessions):
        rid = add_phone(core, phone)
        hold = await sessions.lock(rid, None, PERSON)
        phone.packages |= {"com.build.app", "com.build.test", "com.build.keepme"}
        await core.authority.release(rid, hold.key)
        assert core.registry.get(rid).state is ResourceState.CLEANING
        with pytest.raises(Refused) as info:
            await core.authority.reserve(rid, 60, QUEUED)
        assert info.value.code is Code.CLEANING
        await until(lambda: core.registry.get(rid).state is ResourceState.FREE, what="clean")
        assert phone.packages == {"com.lab.tools", "com.lab.keep", "com.build.keepme"}
        assert "uninstalled com.build.app, com.build.test" in await log_of(sessions, rid)


async def test_a_failed_teardown_leaves_the_resource_unhealthy_not_free(
    tmp_path: Path, adb_server: AdbServer, connected: Callable[..., FakeAdbd]
) -> None:
    phone = connected()
    teardown = [{"step": "command", "name": "wipe", "run": ["sh", "-c", "echo disk busy; exit 1"]}]
    async with agent_with(tmp_path, [rule(teardown=teardown)], adb_server) as (core, sessions):
        rid = add_phone(core, phone)
        hold = await sessions.lock(rid, None, PERSON)
        await core.authority.release(rid, hold.key)
        await until(lambda: core.registry.get(rid).phase is None, what="teardown to end")
        res = core.registry.get(rid)
        assert res.state is ResourceState.UNHEALTHY and not res.available
        assert res.problem == "teardown failed: teardown step wipe failed: sh exited with status 1"
        [record] = await sessions.journal.find(resource_id=rid)
        assert record.status is Status.DIRTY


async def test_steps_that_need_adb_fail_clearly_and_never_start_a_server(
    tmp_path: Path, connected: Callable[..., FakeAdbd], adb_server: AdbServer
) -> None:
    phone = connected()
    closed = AdbServer(tmp_path / "nobody")  # a port where no server runs
    before = _adb_servers()
    async with agent_with(tmp_path, [rule(provision=PROVISION)], closed) as (core, sessions):
        rid = add_phone(core, phone)
        with pytest.raises(Refused) as info:
            await sessions.lock(rid, None, PERSON)
        assert f"the adb server at 127.0.0.1:{closed.port} does not answer" in info.value.message
        assert "the agent never starts one" in info.value.message
    assert _adb_servers() == before
    assert not closed.answers()


def _adb_servers() -> set[int]:
    """The pids of adb server processes now."""
    found = set()
    for pid in Path("/proc").iterdir():
        if pid.name.isdigit():
            with contextlib.suppress(OSError):
                cmdline = (pid / "cmdline").read_bytes().split(b"\0")
                if cmdline and cmdline[0].endswith(b"adb") and b"server" in b" ".join(cmdline):
                    found.add(int(pid.name))
    return found


async def test_a_restart_fails_provisioning_and_repeats_teardown(
    tmp_path: Path, adb_server: AdbServer, connected: Callable[..., FakeAdbd]
) -> None:
    phone = connected()
    marks = tmp_path / "marks"
    table = rule(
        lock_wait=0,
        provision=[{"step": "command", "run": ["sh", "-c", f"echo p >> {marks}; sleep 30"]}],
        teardown=[{"step": "command", "run": ["sh", "-c", f"echo t >> {marks}; sleep 30"]}],
    )
    async with agent_with(tmp_path, [table], adb_server) as (core, sessions):
        rid = add_phone(core, phone)
        await sessions.lock(rid, None, PERSON)
        await until(marks.exists, what="provisioning to start")
    # The agent stopped mid-provisioning; the phase is on disk.
    fast = rule(teardown=[{"step": "command", "run": ["sh", "-c", f"echo t >> {marks}; sleep 30"]}])
    async with agent_with(tmp_path, [fast], adb_server) as (core, sessions):
        add_phone(core, phone)
        await until(lambda: marks.read_text().count("t") == 1, what="teardown to start")
        res = core.registry.get(rid)
        assert res.hold is None and res.phase is Phase.CLEANING
        assert "restarted during provisioning" in await log_of(sessions, rid)
    # Stopped mid-teardown: it runs again from the start.
    done = rule(teardown=[{"step": "command", "run": ["sh", "-c", f"echo t >> {marks}"]}])
    async with agent_with(tmp_path, [done], adb_server) as (core, sessions):
        add_phone(core, phone)
        await until(lambda: core.registry.get(rid).phase is None, what="teardown to end")
        assert marks.read_text().split() == ["p", "t", "t"]
        assert core.registry.get(rid).state is ResourceState.FREE


async def test_a_bug_in_a_session_never_leaves_the_resource_stuck(
    tmp_path: Path,
    adb_server: AdbServer,
    connected: Callable[..., FakeAdbd],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    phone = connected()

    async def broken(*args: object) -> set[str]:
        raise RuntimeError("a bug")

    monkeypatch.setattr("agent.sessions.manager.list_packages", broken)
    table = rule(teardown=[{"step": "uninstall-new-packages"}])
    async with agent_with(tmp_path, [table], adb_server) as (core, sessions):
        rid = add_phone(core, phone)
        with pytest.raises(Refused) as info:
            await sessions.lock(rid, None, PERSON)
        assert "internal error: RuntimeError('a bug')" in info.value.message
        await until(lambda: core.registry.get(rid).phase is None, what="teardown to end")
        # The teardown could not know what to remove: not clean, but not stuck either.
        assert core.registry.get(rid).state is ResourceState.UNHEALTHY


async def test_reboot_waits_for_the_phone_to_come_back_and_boot(
    tmp_path: Path, adb_server: AdbServer, connected: Callable[..., FakeAdbd]
) -> None:
    phone = connected()
    phone.boot_seconds = 0.5
    steps = [
        {"step": "clear-logcat"},
        {"step": "reboot", "timeout": 60},
        {
            "step": "command",
            "name": "env",
            "run": ["sh", "-c", "echo $SESSION_PHASE $RESOURCE_KIND"],
        },
    ]
    async with agent_with(tmp_path, [rule(provision=steps, teardown=steps[2:])], adb_server) as (
        core,
        sessions,
    ):
        rid = add_phone(core, phone)
        hold = await sessions.lock(rid, None, PERSON)
        assert phone.reboots == [""]  # adb's reboot: service, not a shell command
        assert "reboot:" in phone.services
        assert any(s.endswith(":logcat -c") for s in phone.services), phone.services
        text = await log_of(sessions, rid)
        assert "step clear-logcat: ok" in text and "step reboot: ok" in text, text
        assert "adb sees the phone again" in text and "sys.boot_completed is 1" in text
        assert "provision android" in text
        await core.authority.release(rid, hold.key)
        await until(lambda: core.registry.get(rid).state is ResourceState.FREE, what="clean")
        assert "teardown android" in await log_of(sessions, rid)


async def test_a_lock_is_answered_only_once_its_provisioning_is_on_disk(tmp_path: Path) -> None:
    """Found by tests/integration/test_fault_crash.py: a SIGKILL just after a Lock was
    answered OK found the resource still "provisioning" on disk, and the restart
    failed that provisioning -- releasing a lock Jenkins had been told it had."""
    go, done = tmp_path / "go", tmp_path / "done"
    script = f"while [ ! -e {go} ]; do sleep 0.01; done; touch {done}"
    wait = {"step": "command", "run": ["sh", "-c", script]}
    rules = [SessionRule.model_validate({"kind": "static", "provision": [wait]})]
    async with agent_with(tmp_path / "state", rules, None) as (core, sessions):
        core.authority.describe(Description("b1", "Board", Kind.STATIC))
        lock = asyncio.ensure_future(sessions.lock("b1", None, PERSON))
        await until(lambda: core.registry.get("b1").phase is Phase.PROVISIONING)
        gate = Gate(tmp_path)
        blocked = gate.hold(core.store)  # the disk is slow now
        await gate.closed()
        go.touch()
        await until(done.exists)
        await asyncio.sleep(0.5)  # the step has ended: time enough to answer, were it allowed
        assert not lock.done(), "the Lock was answered before its provisioning was saved"
        gate.open()
        assert await blocked
        hold = await asyncio.wait_for(lock, 10)
        row = sqlite3.connect(tmp_path / "state" / STATE_FILE).execute(
            "SELECT hold_key, phase FROM resources WHERE id='b1'"
        )
        assert row.fetchone() == (hold.key, None)
