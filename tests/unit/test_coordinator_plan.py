"""The coordinator sync's pure planner: what to post and which commands to send, per case."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from agent.coordinator.plan import (
    Belief,
    Command,
    Ending,
    Post,
    apply_command,
    apply_post,
    commands,
    end_command,
    pending_post,
)
from agent.model import EndReason, Hold, Holder, HoldKind, Kind, Phase, Resource
from tests.support.holders import BUILD, OTHER, QUEUED

OWN = Holder("resource-agent://lab1", "resource-agent on lab1")


def phone(**changes: Any) -> Resource:
    return replace(
        Resource("p1", "Pixel 7", Kind.ANDROID, "a phone", {"model": "Pixel 7"}), **changes
    )


def hold(kind: HoldKind, holder: Holder = BUILD) -> Hold:
    return Hold(kind, "k", holder, 100.0)


def registered(**changes: object) -> Belief:
    belief = Belief(
        registered=True, description="a phone", values={"model": "Pixel 7"}, enabled=True
    )
    for name, value in changes.items():
        setattr(belief, name, value)
    return belief


def info(cmd: Command) -> dict[str, str]:
    return dict(json.loads(cmd.params["clientInfo"]))


# ------------------------------------------------------------------ posts


def test_a_new_resource_is_posted_with_its_enabled_flag() -> None:
    post = pending_post("p1", phone(), Belief())
    assert post is not None and post.rid == "p1"
    assert post.value["enabled"] is True and post.value["description"] == "a phone"
    assert post.values == {"model": "Pixel 7"}


def test_what_jenkins_has_already_is_not_posted_again() -> None:
    assert pending_post("p1", phone(), registered()) is None
    assert pending_post("p1", None, registered()) is None


def test_enabled_goes_along_only_while_jenkins_value_is_unknown() -> None:
    post = pending_post("p1", phone(description="moved"), registered())
    assert post is not None and "enabled" not in post.value
    post = pending_post("p1", phone(description="moved"), registered(enabled=None))
    assert post is not None and post.value["enabled"] is True


def test_a_vanished_metadata_value_is_overwritten_with_empty() -> None:
    post = pending_post("p1", phone(metadata={}), registered())
    assert post is not None and post.values == {"model": ""}


def test_a_value_jenkins_rejected_is_not_resent_until_it_changes() -> None:
    first = pending_post("p1", phone(), Belief())
    assert first is not None
    assert pending_post("p1", phone(), Belief(rejected=first.value)) is None
    assert pending_post("p1", phone(description="new"), Belief(rejected=first.value)) is not None


def test_apply_post_believes_what_was_sent() -> None:
    belief = Belief(rejected={"x": 1})
    post = Post("p1", {"description": "d", "enabled": False}, {"a": "b"})
    apply_post(belief, post)
    assert belief == Belief(registered=True, description="d", values={"a": "b"}, enabled=False)


# --------------------------------------------------------------- commands


def test_nothing_is_commanded_before_the_resource_is_registered() -> None:
    assert commands(phone(hold=hold(HoldKind.LOCKED)), Belief(), None, OWN) == []
    assert commands(phone(), None, None, OWN) == []


def test_enabled_follows_availability() -> None:
    [cmd] = commands(phone(enabled=False), registered(), None, OWN)
    assert (cmd.name, cmd.enabled) == ("disable", False)
    [cmd] = commands(phone(health="offline"), registered(), None, OWN)
    assert cmd.name == "disable"
    [cmd] = commands(phone(), registered(enabled=False), None, OWN)
    assert (cmd.name, cmd.enabled) == ("enable", True)
    # A resource the agent no longer has is disabled, never left bookable.
    [cmd] = commands(None, registered(), None, OWN)
    assert cmd.name == "disable"


def test_a_hold_is_told_with_the_holders_own_client_info() -> None:
    [cmd] = commands(phone(hold=hold(HoldKind.RESERVED, QUEUED)), registered(), None, OWN)
    assert cmd.name == "reserveResource" and cmd.params["reservedBy"] == QUEUED.url
    assert info(cmd) == {"id": QUEUED.id, "url": QUEUED.url}
    [cmd] = commands(phone(hold=hold(HoldKind.LOCKED)), registered(), None, OWN)
    assert cmd.name == "lockResource" and cmd.params["lockedBy"] == BUILD.url
    assert info(cmd) == {"id": BUILD.id, "url": BUILD.url}


def test_a_hold_jenkins_knows_is_not_told_again_but_another_holder_is() -> None:
    locked = phone(hold=hold(HoldKind.LOCKED))
    assert commands(locked, registered(hold=HoldKind.LOCKED, holder=BUILD), None, OWN) == []
    # Learned from Jenkins (no holder known): the kind is enough.
    assert commands(locked, registered(hold=HoldKind.LOCKED), None, OWN) == []
    [cmd] = commands(locked, registered(hold=HoldKind.LOCKED, holder=OTHER), None, OWN)
    assert cmd.name == "lockResource"


def test_an_expired_reservation_is_expired() -> None:
    ended = Ending(hold(HoldKind.RESERVED, QUEUED), EndReason.RESERVATION_EXPIRED)
    belief = registered(hold=HoldKind.RESERVED, holder=QUEUED)
    assert end_command(belief, ended, OWN) == Command("expireReservation", {}, clears=True)


def test_a_release_is_echoed_with_the_releasing_systems_client_info() -> None:
    # Jenkins reserved as the task and locked as the build: same system, other url.
    ended = Ending(hold(HoldKind.LOCKED, BUILD), EndReason.RELEASED)
    cmd = end_command(registered(hold=HoldKind.RESERVED, holder=QUEUED), ended, OWN)
    assert cmd.name == "releaseResource" and cmd.clears
    assert info(cmd) == {"id": BUILD.id, "url": BUILD.url}


def test_forced_and_lease_ends_are_cleared_on_the_agents_authority() -> None:
    belief = registered(hold=HoldKind.LOCKED, holder=BUILD)
    for reason in (EndReason.FORCED, EndReason.LEASE_EXPIRED):
        cmd = end_command(belief, Ending(hold(HoldKind.LOCKED), reason), OWN)
        assert cmd.name == "releaseResource" and info(cmd)["id"] == OWN.id
    # A hold only Jenkins believed in (no ending known), or another system's release.
    assert info(end_command(belief, None, OWN))["id"] == OWN.id
    other = Ending(hold(HoldKind.LOCKED, OTHER), EndReason.RELEASED)
    assert info(end_command(belief, other, OWN))["id"] == OWN.id


def test_commands_end_a_hold_that_is_gone() -> None:
    [cmd] = commands(phone(), registered(hold=HoldKind.LOCKED), None, OWN)
    assert cmd.name == "releaseResource"


def test_apply_command_believes_what_it_says() -> None:
    belief = registered(hold=HoldKind.RESERVED, holder=QUEUED)
    apply_command(belief, Command("lockResource", {}, hold=hold(HoldKind.LOCKED)))
    assert (belief.hold, belief.holder) == (HoldKind.LOCKED, BUILD)
    apply_command(belief, Command("releaseResource", {}, clears=True))
    assert (belief.hold, belief.holder) == (None, None)
    apply_command(belief, Command("disable", {}, enabled=False))
    assert belief.enabled is False


def test_a_resource_being_cleaned_is_taken_by_the_agent_until_it_is_clean() -> None:
    released = Ending(hold(HoldKind.LOCKED), EndReason.RELEASED)
    cleaning = phone(phase=Phase.CLEANING)
    # Jenkins still believes in the build's lock: the agent's own takes its place, so that
    # the Jenkins that released it (which ignores its own echo) sees it taken too.
    [cmd] = commands(cleaning, registered(hold=HoldKind.LOCKED, holder=BUILD), released, OWN)
    assert cmd.name == "lockResource" and info(cmd)["id"] == OWN.id
    assert cmd.params["lockedBy"] == f"{OWN.url}: cleaning"
    belief = registered(hold=HoldKind.LOCKED, holder=BUILD)
    apply_command(belief, cmd)
    assert commands(cleaning, belief, released, OWN) == []
    # Clean: released on the agent's authority, everywhere.
    [cmd] = commands(phone(), belief, released, OWN)
    assert cmd.name == "releaseResource" and info(cmd)["id"] == OWN.id
