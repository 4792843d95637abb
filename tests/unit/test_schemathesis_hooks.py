"""The fuzzer's check that a refused request changed nothing, and the one change it lets
pass: a hold taken earlier that ran out between its two looks."""

from __future__ import annotations

from typing import Any

from tests.support.schemathesis_hooks import _expired_meanwhile

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def listing(holder: dict[str, Any] | None, state: str, reason: str = "") -> dict[str, Any]:
    res = {"id": "r1", "state": state, "disabled_reason": reason, "holder": holder}
    return {"resources": [res]}


def held(expires: str | None) -> dict[str, Any]:
    return {"kind": "reserved", "holder": {"id": "j", "url": "u"}, "since": "x", "expires": expires}


def test_a_hold_whose_deadline_came_may_be_gone() -> None:
    before = listing(held("2027-01-15T07:59:59+00:00"), "reserved")
    assert _expired_meanwhile(before, listing(None, "free"), NOW)


def test_any_other_change_is_not_let_pass() -> None:
    before = listing(held("2027-01-15T07:59:59+00:00"), "reserved")
    assert not _expired_meanwhile(before, listing(None, "free", "changed"), NOW)
    assert not _expired_meanwhile(listing(held("2027-01-15T08:10:00+00:00"), "reserved"),
                                  listing(None, "free"), NOW)  # fmt: skip
    assert not _expired_meanwhile(listing(held(None), "locked"), listing(None, "free"), NOW)
    assert not _expired_meanwhile(listing(None, "free"), listing(None, "free", "x"), NOW)
