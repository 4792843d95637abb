"""Who may call what, as pure rules: each route's need, the decision, tokens, addresses.

The real agent is held to these in tests/integration/test_access.py; here every
combination is checked, which a process per case would make slow.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from pathlib import Path

import pytest

from agent.addresses import is_loopback, parse_allow
from agent.api.access import RULES, Need, Rule, decide, rule_for
from agent.api.allow import Allowlist, expand
from agent.api.tokens import Token, Tokens, load_tokens
from agent.audit import line
from agent.config import ServerSection
from agent.coordinator.excerpt import page
from agent.credentials import CredentialError
from agent.model import Action, Code, Role
from agent.statelock import StateLock, StateLocked, in_use

USER = Token("ci", Role.USER, b"")
ADMIN = Token("ops", Role.ADMIN, b"")


def test_each_change_has_the_need_the_issue_asks_for() -> None:
    def need(method: str, route: str, body: dict[str, object] | None = None) -> Need:
        return rule_for(method, route, body or {}).need

    assert need("POST", "/") is Need.JSONRPC
    assert need("GET", "/api/health") is Need.OPEN
    assert need("GET", "/api/resources/{id}/history") is Need.READ
    assert need("GET", "/api/sessions/{id}/log") is Need.READ
    assert need("POST", "/api/resources/{id}/reserve") is Need.USER
    assert need("POST", "/api/acquire") is Need.USER
    assert need("POST", "/api/resources/{id}/lock") is Need.USER
    assert need("POST", "/api/resources/{id}/lock", {"key": "k"}) is Need.KEY
    assert need("POST", "/api/resources/{id}/release", {"key": "k"}) is Need.KEY
    assert need("POST", "/api/resources/{id}/release", {"key": "k", "force": True}) is Need.ADMIN
    assert need("POST", "/api/resources/{id}/renew", {"key": "k"}) is Need.KEY
    assert need("POST", "/api/resources/{id}/enable") is Need.ADMIN
    assert need("POST", "/api/resources/{id}/disable") is Need.ADMIN
    assert rule_for("POST", "/api/resources/{id}/forget", {}) == Rule(Need.ADMIN, Action.FORGET)
    # A change route nobody wrote a rule for is an administrator's.
    assert rule_for("DELETE", "/api/resources/{id}", {}) == Rule(Need.ADMIN)


def test_every_rule_names_its_action_for_the_audit_trail() -> None:
    for (method, route), entry in RULES.items():
        rule = entry if isinstance(entry, Rule) else entry({})
        if method == "POST" and route.startswith("/api/"):
            assert isinstance(rule.action, Action), route


@pytest.mark.parametrize(
    ("need", "loopback", "token", "tokens", "allowed"),
    [
        # No tokens configured: loopback may do anything, nobody else anything.
        *((need, True, None, False, True) for need in Need if need is not Need.JSONRPC),
        (Need.USER, False, None, False, False),
        (Need.KEY, False, None, False, False),
        (Need.ADMIN, False, None, False, False),
        (Need.OPEN, False, None, False, True),
        # Tokens configured: the roles apply everywhere, loopback included...
        (Need.USER, True, None, True, False),
        (Need.USER, False, USER, True, True),
        (Need.ADMIN, True, None, True, False),
        (Need.ADMIN, True, USER, True, False),
        (Need.ADMIN, False, ADMIN, True, True),
        # ...but the holder's key from this machine needs no token.
        (Need.KEY, True, None, True, True),
        (Need.KEY, False, None, True, False),
        (Need.KEY, False, USER, True, True),
    ],
)
def test_decide(
    need: Need, loopback: bool, token: Token | None, tokens: bool, allowed: bool
) -> None:
    denial = decide(need, "x", loopback=loopback, token=token, tokens=tokens, open_reads=True)
    assert (denial is None) is allowed, denial


def test_reads_follow_open_reads_and_denials_say_what_is_missing() -> None:
    for loopback, tokens in itertools.product((True, False), (True, False)):
        assert decide(Need.READ, "read", loopback=loopback, token=None, tokens=tokens,
                      open_reads=True) is None  # fmt: skip
    closed = decide(Need.READ, "GET /api/resources", loopback=True, token=None, tokens=True,
                    open_reads=False)  # fmt: skip
    assert closed is not None and closed.status == 401
    forbidden = decide(Need.ADMIN, "disable", loopback=True, token=USER, tokens=True,
                       open_reads=True)  # fmt: skip
    assert forbidden is not None
    assert (forbidden.status, forbidden.code) == (403, Code.FORBIDDEN)
    assert (
        forbidden.message
        == "disable needs a token with the admin role; token 'ci' has the user role"
    )
    remote = decide(Need.USER, "reserve", loopback=False, token=None, tokens=False, open_reads=True)
    assert remote is not None and "from this machine only" in remote.message


def test_tokens_are_found_by_value_never_kept_as_it(tmp_path: Path) -> None:
    (tmp_path / "ci.token").write_text("  " + "a" * 32 + "\n")
    (tmp_path / "ops.token").write_text("b" * 32)
    server = ServerSection(token_files={"ci": "ci.token", "ops": "ops.token"}, admin_tokens=["ops"])
    tokens = load_tokens(server, tmp_path)
    found = tokens.find("a" * 32)
    assert found is not None and (found.name, found.role) == ("ci", Role.USER)
    assert tokens.find("b" * 32) == Token("ops", Role.ADMIN, tokens.find("b" * 32).digest)  # type: ignore[union-attr]
    assert tokens.find("a" * 31) is None and tokens.find("") is None
    assert "a" * 32 not in repr(tokens.find("a" * 32)) and tokens.names() == ["ci", "ops"]
    assert not Tokens()


@pytest.mark.parametrize(
    ("content", "problem"),
    [("", "is empty"), ("short", "is 5 characters"), (None, "cannot read")],
)
def test_unusable_token_files_are_named(tmp_path: Path, content: str | None, problem: str) -> None:
    if content is not None:
        (tmp_path / "ci.token").write_text(content)
    with pytest.raises(CredentialError, match=problem) as info:
        load_tokens(ServerSection(token_files={"ci": "ci.token"}), tmp_path)
    assert "ci.token" in str(info.value)


def test_one_token_under_two_names_is_refused(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).write_text("s" * 32)
    with pytest.raises(CredentialError, match="'a' and 'b' are the same token"):
        load_tokens(ServerSection(token_files={"a": "a", "b": "b"}), tmp_path)


def test_allow_entries_and_peers() -> None:
    assert str(parse_allow("10.1.0.0/16")) == "10.1.0.0/16"
    assert str(parse_allow("::1")) == "::1/128"
    assert parse_allow("jenkins.example") == "jenkins.example"
    for bad in ("10.0.0.300", "-x.example", "", "a b"):
        with pytest.raises(ValueError, match="is not an address"):
            parse_allow(bad)
    assert is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("192.0.2.7") and not is_loopback(None) and not is_loopback("x")


async def test_allowlist_by_network_and_by_name() -> None:
    urls = ["https://127.0.0.9:8443/", "http://localhost/jenkins/"]
    entries = expand(["10.0.0.0/8", "coordinators"], urls)
    assert entries == ["10.0.0.0/8", "127.0.0.9", "localhost"]
    allow = Allowlist(entries)
    assert allow.allows("10.2.3.4") and allow.allows("::ffff:10.2.3.4")
    assert allow.allows("127.0.0.9") and not allow.allows("127.0.0.8")
    assert not allow.allows("127.0.0.1") and allow.unresolved() == ["localhost"]
    await allow.resolve()
    assert allow.allows("127.0.0.1") and allow.unresolved() == []
    assert "localhost (" in allow.describe()


async def test_a_name_that_stops_resolving_keeps_its_addresses(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    allow = Allowlist(["localhost"])
    await allow.resolve()
    assert allow.allows("127.0.0.1")

    async def no_dns(*args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", no_dns)
    await allow.resolve()
    await allow.resolve()
    assert allow.allows("127.0.0.1"), "a failed lookup must not drop what the name had"
    warnings = [r.getMessage() for r in caplog.records if "cannot resolve" in r.getMessage()]
    assert len(warnings) == 1 and "keeping its addresses: 127.0.0.1" in warnings[0], warnings


def test_audit_lines_are_one_line_whatever_the_values() -> None:
    assert (
        line(action="reserve", resource="r1", token=None, detail="") == "action=reserve resource=r1"
    )
    text = line(holder_url='evil\naction=forget "x"', detail="for 60 s")
    assert "\n" not in text
    assert text == 'holder_url="evil\\naction=forget \\"x\\"" detail="for 60 s"'


def test_html_pages_are_cut_to_their_title() -> None:
    html = "<html><head><title>Error 500 &amp; more</title></head><body>" + "x" * 5000
    assert page(html) == "an HTML page titled 'Error 500 & more'"
    assert page("<!DOCTYPE html><html><body>no title</body></html>") == (
        "an HTML page without a title"
    )
    assert page('{"type": "error",\n "message": "x"}') == '{"type": "error", "message": "x"}'
    assert page("y" * 3000).endswith("...") and len(page("y" * 3000)) == 2003


def test_the_state_lock_is_one_holder_at_a_time(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert in_use(state) is None
    with StateLock(state):
        assert in_use(state) is not None and in_use(state).startswith("PID ")  # type: ignore[union-attr]
        with pytest.raises(StateLocked, match=f"is running on the state directory {state}"):
            StateLock(state).__enter__()
    assert in_use(state) is None
    with StateLock(state):  # free again once the first let go
        pass
