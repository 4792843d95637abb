"""What to send one Jenkins so that it believes what the agent knows: the pure diff planner.

For each resource the sync keeps what should be (the latest committed
snapshot), what the coordinator is believed to have (a ``Belief``), and how
the last hold ended. From those three this module works out the metadata
value to post and the httpcli commands to send -- no I/O, no clock -- so every
case can be tested on its own (tests/unit/test_coordinator_plan.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.coordinator.documents import client_info, describe, holder_name, resource_value
from agent.model import EndReason, Hold, Holder, HoldKind, Phase, Resource


@dataclass
class Belief:
    """What one coordinator is believed to hold for one resource."""

    registered: bool = False
    description: str | None = None
    values: dict[str, str] = field(default_factory=dict)
    enabled: bool | None = None  # None: unknown, so the next post sets it
    hold: HoldKind | None = None
    holder: Holder | None = None  # None when learned from Jenkins (no clientInfo there)
    rejected: dict[str, Any] | None = None  # a value Jenkins refused: not resent unchanged


@dataclass(frozen=True, slots=True)
class Post:
    """One resource's value in a metadata update, and the metadata values it sets."""

    rid: str
    value: dict[str, Any]
    values: dict[str, str]


@dataclass(frozen=True, slots=True)
class Command:
    """One httpcli command and what it makes Jenkins believe once sent."""

    name: str
    params: dict[str, str]
    enabled: bool | None = None
    hold: Hold | None = None
    clears: bool = False


@dataclass(frozen=True, slots=True)
class Ending:
    """How the last hold on a resource ended, to pick the command that tells Jenkins."""

    hold: Hold
    reason: EndReason


def values_to_send(res: Resource, belief: Belief) -> dict[str, str]:
    """The resource's metadata; a value Jenkins has that vanished becomes ""."""
    # A post cannot remove a metadata value, only overwrite it.
    values = {name: "" for name in belief.values if name not in res.metadata}
    values.update(res.metadata)
    return values


def pending_post(rid: str, res: Resource | None, belief: Belief) -> Post | None:
    """What to post for ``rid``, or None if Jenkins has it (or refused it as it is)."""
    if res is None:
        return None
    values = values_to_send(res, belief)
    if belief.registered and belief.description == describe(res) and belief.values == values:
        return None
    # ``enabled`` goes along only when Jenkins' value is unknown (a new resource).
    value = resource_value(res, values, res.available if belief.enabled is None else None)
    return None if value == belief.rejected else Post(rid, value, values)


def commands(
    res: Resource | None, belief: Belief | None, ended: Ending | None, own: Holder
) -> list[Command]:
    """The httpcli commands that bring Jenkins' enabled flag and hold in line.

    ``own`` is the agent's identity, for corrections made on its own authority.
    """
    if belief is None or not belief.registered:
        return []
    out: list[Command] = []
    enabled = res is not None and res.available
    if belief.enabled is not enabled:
        out.append(Command("enable" if enabled else "disable", {}, enabled=enabled))
    hold = res.hold if res is not None else None
    if hold is None and res is not None and res.phase is Phase.CLEANING:
        # Being cleaned: taken, not free -- by the agent itself, so that every
        # Jenkins (the one that released it too) sees it taken until it is clean.
        hold = Hold(HoldKind.LOCKED, "", cleaning_holder(own), 0.0)
    if hold is None:
        if belief.hold is not None:
            out.append(end_command(belief, ended, own))
    elif hold.kind is not belief.hold or (
        belief.holder is not None and belief.holder != hold.holder
    ):
        who, info = holder_name(hold.holder), client_info(hold.holder)
        if hold.kind is HoldKind.RESERVED:
            out.append(
                Command("reserveResource", {"reservedBy": who, "clientInfo": info}, hold=hold)
            )
        else:
            out.append(Command("lockResource", {"lockedBy": who, "clientInfo": info}, hold=hold))
    return out


def cleaning_holder(own: Holder) -> Holder:
    """Who Jenkins is told holds a resource while the agent cleans it."""
    return Holder(own.id, f"{own.url}: cleaning")


def end_command(belief: Belief, ended: Ending | None, own: Holder) -> Command:
    """The command that clears the hold Jenkins believes in."""
    if ended is not None and belief.holder is not None:
        if (
            belief.holder == ended.hold.holder
            and ended.reason is EndReason.RESERVATION_EXPIRED
            and belief.hold is HoldKind.RESERVED
        ):
            return Command("expireReservation", {}, clears=True)
        # The holder released it: its own Jenkins ignores this, the others clear it.
        # The same system, not the same holder: Jenkins reserves as the task and
        # locks as the build, and a lock and release in one batch leave this
        # coordinator believing in the reservation. That Jenkins keeps its own
        # copy itself; clearing it on the agent's authority could wipe the next
        # reservation it has just taken.
        if ended.reason is EndReason.RELEASED and belief.holder.id == ended.hold.holder.id:
            info = client_info(ended.hold.holder)
            return Command("releaseResource", {"clientInfo": info}, clears=True)
    # Forced, lease expired, or a hold only Jenkins believed in: the agent
    # clears it everywhere, on its own authority.
    return Command("releaseResource", {"clientInfo": client_info(own)}, clears=True)


def apply_post(belief: Belief, post: Post) -> None:
    """Jenkins took ``post``: believe it."""
    belief.registered = True
    belief.rejected = None
    belief.description = post.value["description"]
    belief.values = post.values
    if "enabled" in post.value:
        belief.enabled = post.value["enabled"]


def apply_command(belief: Belief, cmd: Command) -> None:
    """Jenkins took (or refused for good) ``cmd``: believe what it says."""
    if cmd.enabled is not None:
        belief.enabled = cmd.enabled
    if cmd.clears:
        belief.hold = belief.holder = None
    if cmd.hold is not None:
        belief.hold, belief.holder = cmd.hold.kind, cmd.hold.holder
