"""The ``[[session]]`` tables: which resources get a session, and its steps.

A session prepares a resource for one lock (``provision``) and cleans it after
(``teardown``), the way a one-shot executor is made for one build. The first
table whose ``kind`` and ``when`` match a resource applies; without one, a lock
has no session. Pure models and matching: the config loader and the registry's
``needs_session`` use them without any I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent.model import MAX_SECONDS, Kind, Resource

# jsonrpc4j gives up on an answer after 120 s; a Lock that waits must answer before.
LOCK_WAIT_LIMIT = 115.0

StepSeconds = Annotated[float, Field(gt=0, le=MAX_SECONDS)]


class _Step(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    name: str | None = Field(default=None, min_length=1, description="What the log calls it.")

    @property
    def label(self) -> str:
        """The step's name in the log and in messages."""
        return self.name or str(getattr(self, "step", "step"))


class BootCompleted(_Step):
    """Wait until the phone says ``sys.boot_completed`` = 1."""

    step: Literal["boot-completed"]
    timeout: StepSeconds = 120.0


class Battery(_Step):
    """The battery holds at least ``min`` percent."""

    step: Literal["battery"]
    min: int = Field(ge=0, le=100)
    timeout: StepSeconds = 30.0


class UnlockScreen(_Step):
    """Wake the phone and dismiss a keyguard that has no credential."""

    step: Literal["unlock-screen"]
    timeout: StepSeconds = 30.0


class UninstallNewPackages(_Step):
    """Remove the third-party packages that appeared during the session, except ``keep``."""

    step: Literal["uninstall-new-packages"]
    keep: list[str] = Field(default_factory=list)
    timeout: StepSeconds = 120.0


class ClearLogcat(_Step):
    """Empty the phone's log buffers."""

    step: Literal["clear-logcat"]
    timeout: StepSeconds = 30.0


class Reboot(_Step):
    """Reboot the phone and wait until it has booted."""

    step: Literal["reboot"]
    timeout: StepSeconds = 240.0


class Command(_Step):
    """Run a program (argv; a shell only if ``run`` starts one) in its own process group."""

    step: Literal["command"]
    run: list[str] = Field(min_length=1)
    timeout: StepSeconds = 60.0

    @field_validator("run")
    @classmethod
    def _check_run(cls, value: list[str]) -> list[str]:
        if not value[0]:
            raise ValueError("the program to run (run[0]) is empty")
        return value


Step = Annotated[
    BootCompleted | Battery | UnlockScreen | UninstallNewPackages | ClearLogcat | Reboot | Command,
    Field(discriminator="step"),
]
ANDROID_STEPS = (BootCompleted, Battery, UnlockScreen, UninstallNewPackages, ClearLogcat, Reboot)


class SessionRule(BaseModel):
    """``[[session]]``: the steps around a lock of the resources it matches."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    kind: Literal["android", "usb", "static"] | None = None
    when: dict[str, str] = Field(default_factory=dict)
    lock_wait: float = Field(default=100.0, ge=0)
    quarantine_after: int = Field(default=3, ge=1)
    provision: list[Step] = Field(default_factory=list)
    teardown: list[Step] = Field(default_factory=list)

    @field_validator("lock_wait")
    @classmethod
    def _check_lock_wait(cls, value: float) -> float:
        if value >= LOCK_WAIT_LIMIT:
            raise ValueError(
                f"must be under {LOCK_WAIT_LIMIT:.0f} seconds: Jenkins stops waiting for a "
                f"Lock answer after 120 s, got {value:g}"
            )
        return value

    @field_validator("when")
    @classmethod
    def _check_when(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            if not pattern:
                raise ValueError(f"{name}: an empty pattern matches nothing; use '*'")
        return value

    @model_validator(mode="after")
    def _check_steps(self) -> SessionRule:
        if self.kind not in (None, "android"):
            for phase in ("provision", "teardown"):
                for index, step in enumerate(getattr(self, phase)):
                    if isinstance(step, ANDROID_STEPS):
                        raise ValueError(
                            f"{phase}[{index}]: step {step.step!r} is for android phones, "
                            f"not kind {self.kind!r}"
                        )
        return self

    def matches(self, res: Resource) -> bool:
        """Whether this table applies to ``res``."""
        if self.kind is not None and res.kind is not Kind(self.kind):
            return False
        return _globs_match(self.when, res.metadata)


def _globs_match(when: Mapping[str, str], metadata: Mapping[str, str]) -> bool:
    for name, pattern in when.items():
        value = metadata.get(name)
        if value is None or not fnmatchcase(value, pattern):
            return False
    return True


def rule_for(rules: Iterable[SessionRule], res: Resource) -> SessionRule | None:
    """The first table that matches ``res``, or None: no session."""
    return next((rule for rule in rules if rule.matches(res)), None)
