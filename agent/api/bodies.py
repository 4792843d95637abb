"""What the REST API accepts: one pydantic model per request body.

Strict types (``"60"`` is not a number), unknown fields refused, durations
bounded; the OpenAPI document takes its request schemas from these models, so
what it says is exactly what is checked.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.model import MAX_SECONDS

Seconds = Annotated[float, Field(gt=0, le=MAX_SECONDS)]
Wait = Annotated[float, Field(ge=0, le=MAX_SECONDS)]


class Body(BaseModel):
    """A request body: strict, closed, immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class ReserveBody(Body):
    """``reserve``: seconds until the reservation lapses; who holds it (a person, a script)."""

    timeout: Seconds = Field(default=300.0, description="Seconds until it expires.")
    holder: str | None = Field(default=None, description="Who (default api@<address>).")


class LockBody(Body):
    """``lock``: the reservation's key (none: lock a free resource), an optional lease."""

    key: str | None = Field(default=None, description="The reservation's key; omit on free.")
    lease: Seconds | None = Field(
        default=None, description="Seconds until the lock expires; omit: never."
    )
    holder: str | None = None
    wait: Wait | None = Field(
        default=None,
        description="Seconds to wait for the resource's provisioning; omit: the session's "
        "lock_wait. A provisioning that fails in that time refuses the lock (code 13).",
    )


class AcquireBody(Body):
    """``acquire``: lock any free resource that matches, in turn with others who wait."""

    select: dict[str, str] = Field(
        default_factory=dict,
        description="Metadata that must match exactly (dotted names, as Jenkins selects).",
    )
    resource: str | None = Field(default=None, description="Only this resource.")
    lease: Seconds = Field(default=60.0, description="Seconds until the lock expires.")
    wait: Wait = Field(
        default=0.0, description="Seconds to wait in line when none is free; 0: not at all."
    )
    holder: str | None = None


class ReleaseBody(Body):
    """``release``: the hold's key, or ``force`` to end anyone's hold."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["key"], "properties": {"key": {"type": "string"}}},
                {"required": ["force"], "properties": {"force": {"const": True}}},
            ]
        }
    )

    key: str | None = None
    force: bool = Field(
        default=False, description="Release whoever holds it (administrators); key not needed."
    )

    @model_validator(mode="after")
    def _key_or_force(self) -> ReleaseBody:
        if self.key is None and not self.force:
            raise ValueError("key: required unless force is true")
        return self


class RenewBody(Body):
    """``renew``: the hold's key and, optionally, a new length in seconds."""

    key: str
    lease: Seconds | None = Field(default=None, description="New length; omit: its own length.")


class RecoverBody(Body):
    """``recover``: why, for the log."""

    reason: str = Field(default="an administrator asked", description="Why, for the log.")


class DisableBody(Body):
    """``disable``: why, for the people who will wonder."""

    reason: str = ""


class EmptyBody(Body):
    """``enable``: no fields; anything sent is refused as unknown."""


BODIES: tuple[type[BaseModel], ...] = (
    ReserveBody,
    LockBody,
    AcquireBody,
    ReleaseBody,
    RenewBody,
    DisableBody,
    RecoverBody,
    EmptyBody,
)
