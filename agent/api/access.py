"""Who may call what: each route's rule, and the middleware that holds every request to it.

No handler checks anything itself: ``RULES`` says what each route needs, and
``guard`` decides before the handler runs (docs/security.md):

- JSON-RPC (``POST /``) is answered only from ``[server] jsonrpc_allow``
  (agent/api/allow.py); any other source gets HTTP 403 without a JSON-RPC body.
- Reads are open with ``[server] open_reads`` (the default), else they need
  what a change needs. Health and the OpenAPI document are always open.
- With no ``[server] token_files``, changes are accepted from loopback only.
- With tokens, a change needs a bearer token -- except one that carries the
  holder's key and comes from loopback (a build on this machine releasing its
  own lock). Forcing a release, enabling and disabling, and any change route
  without a rule of its own, need a token with the admin role, from loopback too.

The guard also reads the request body within ``[server] body_timeout``, sets
the caller (address and token name) the authority stamps on what it commits
(agent/actions.py), and writes the audit line of every refused change.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from agent import audit
from agent.actions import CALLER
from agent.addresses import is_loopback
from agent.api.allow import HOW_TO_ALLOW, Allowlist, expand
from agent.api.rest import ApiError, error_response, holder_of
from agent.api.tokens import Token, Tokens, load_tokens
from agent.api.wire import BadJSON, parse_json
from agent.config import Settings
from agent.model import Action, Caller, Code, Refused, Role

log = logging.getLogger(__name__)

TOKEN_HINT = "the CLI reads one from --token-file or $RESOURCE_AGENT_TOKEN_FILE"


class Need(enum.Enum):
    """What a route asks of its caller."""

    OPEN = "open"  # anyone
    READ = "read"  # anyone with open_reads, else as USER
    USER = "user"  # a token of either role (loopback: none while no tokens are configured)
    KEY = "key"  # as USER, but from loopback no token is needed: the key is the capability
    ADMIN = "admin"  # a token with the admin role (loopback: none while no tokens exist)
    JSONRPC = "jsonrpc"  # a source in jsonrpc_allow


@dataclass(frozen=True, slots=True)
class Rule:
    """A route's need, and what a refused call is called in the audit trail."""

    need: Need
    action: Action | None = None


Body = Mapping[str, Any]


def _lock(body: Body) -> Rule:
    return Rule(Need.KEY if isinstance(body.get("key"), str) else Need.USER, Action.LOCK)


def _release(body: Body) -> Rule:
    if body.get("force") is True:
        return Rule(Need.ADMIN, Action.FORCED_RELEASE)
    return Rule(Need.KEY, Action.RELEASE)


RULES: dict[tuple[str, str], Rule | Callable[[Body], Rule]] = {
    ("POST", "/"): Rule(Need.JSONRPC),
    ("GET", "/api/health"): Rule(Need.OPEN),
    ("GET", "/api/openapi.json"): Rule(Need.OPEN),
    ("POST", "/api/resources/{id}/reserve"): Rule(Need.USER, Action.RESERVE),
    ("POST", "/api/resources/{id}/lock"): _lock,
    ("POST", "/api/resources/{id}/release"): _release,
    ("POST", "/api/resources/{id}/renew"): Rule(Need.KEY, Action.RENEW),
    ("POST", "/api/resources/{id}/enable"): Rule(Need.ADMIN, Action.ENABLE),
    ("POST", "/api/resources/{id}/disable"): Rule(Need.ADMIN, Action.DISABLE),
    ("POST", "/api/acquire"): Rule(Need.USER, Action.LOCK),
    ("POST", "/api/resources/{id}/recover"): Rule(Need.ADMIN, Action.RECOVER),
    ("POST", "/api/resources/{id}/forget"): Rule(Need.ADMIN, Action.FORGET),
}
READS = frozenset({"GET", "HEAD"})


def rule_for(method: str, route: str, body: Body) -> Rule:
    """The rule of ``method`` on the route template ``route``; a change without one is admin's."""
    entry = RULES.get((method, route))
    if entry is None:
        return Rule(Need.READ if method in READS else Need.ADMIN)
    return entry if isinstance(entry, Rule) else entry(body)


@dataclass(frozen=True, slots=True)
class Denial:
    """Why a call is refused, as its HTTP status, code and message."""

    status: int
    code: Code
    message: str


def decide(
    need: Need, what: str, *, loopback: bool, token: Token | None, tokens: bool, open_reads: bool
) -> Denial | None:
    """Whether a call that needs ``need`` may go on (None), else why not.

    ``what`` names the call in the message; ``tokens``: whether any are configured.
    """
    if need is Need.OPEN or (need is Need.READ and open_reads):
        return None
    if not tokens:
        if loopback:
            return None
        return Denial(
            401,
            Code.UNAUTHORIZED,
            f"{what} is accepted from this machine only: this agent has no tokens "
            "([server] token_files; see docs/security.md)",
        )
    if need is Need.ADMIN:
        if token is not None and token.role is Role.ADMIN:
            return None
        if token is not None:
            return Denial(
                403,
                Code.FORBIDDEN,
                f"{what} needs a token with the admin role; token {token.name!r} has the "
                f"{token.role.value} role",
            )
        return Denial(
            401, Code.UNAUTHORIZED, f"{what} needs a bearer token with the admin role; {TOKEN_HINT}"
        )
    if token is not None or (need is Need.KEY and loopback):
        return None
    return Denial(
        401, Code.UNAUTHORIZED, f"{what} needs a bearer token (user or admin role); {TOKEN_HINT}"
    )


@dataclass
class Access:
    """What the guard needs: the tokens, the JSON-RPC allowlist, the read policy, a time limit."""

    tokens: Tokens
    allowlist: Allowlist
    open_reads: bool = True
    body_timeout: float = 10.0


ACCESS = web.AppKey("access", Access)


def _bearer(request: web.Request) -> str | None:
    """The presented token, "" for an Authorization header that is not a bearer token."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _judge(
    request: web.Request, access: Access, rule: Rule, address: str
) -> tuple[Caller, Denial | None]:
    """Who calls, and whether ``rule`` lets them."""
    presented = _bearer(request)
    token = None if not presented else access.tokens.find(presented)
    caller = Caller(address, token.name if token is not None else None)
    if presented == "":
        return caller, Denial(
            401, Code.UNAUTHORIZED, "the Authorization header must be 'Bearer <token>'"
        )
    if presented is not None and token is None:
        log.warning("unknown bearer token from %s on %s %s", address, request.method, request.path)
        return caller, Denial(
            401, Code.UNAUTHORIZED, "the bearer token is not one this agent knows"
        )
    what = rule.action.value if rule.action is not None else f"{request.method} {request.path}"
    denial = decide(
        rule.need,
        what,
        loopback=is_loopback(address),
        token=token,
        tokens=bool(access.tokens),
        open_reads=access.open_reads,
    )
    return caller, denial


class _Body(Mapping[str, Any]):
    """The body's JSON object, parsed only if a rule or an audit line looks into it."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw

    @functools.cached_property
    def _value(self) -> dict[str, Any]:
        try:
            value = parse_json(self._raw) if self._raw.strip() else {}
        except BadJSON:
            return {}  # the handler says what is wrong with it, to a caller allowed to call
        return value if isinstance(value, dict) else {}

    def __getitem__(self, key: str) -> Any:
        return self._value[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._value)

    def __len__(self) -> int:
        return len(self._value)


def _denied(denial: Denial) -> web.Response:
    resp = error_response(denial.code, denial.message, denial.status)
    if denial.status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="resource-agent"'
    return resp


def too_slow(timeout: float) -> web.Response:
    """The 408 for a body that did not arrive within ``timeout`` seconds."""
    resp = error_response(
        Code.TOO_SLOW, f"the request body did not arrive within {timeout:g} s", 408
    )
    resp.force_close()  # what is left of the body would be taken for the next request
    return resp


@web.middleware
async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Hold the request to its route's rule; see the module docstring."""
    route = request.match_info.route.resource
    if route is None:  # no such route or method: the router's own 404/405 follows
        return await handler(request)  # type: ignore[no-any-return]
    entry = RULES.get((request.method, route.canonical))
    if isinstance(entry, Rule) and entry.need is Need.JSONRPC:
        return await jsonrpc_gate(request, handler)
    access = request.app[ACCESS]
    address = request.remote or ""
    try:
        raw = await _read(request, access.body_timeout)
    except TimeoutError:
        return too_slow(access.body_timeout)
    body = _Body(raw)
    rule = rule_for(request.method, route.canonical, body)
    if rule.need is Need.OPEN:  # whatever it carries: a monitor's credentials are not ours
        return await handler(request)  # type: ignore[no-any-return]
    caller, denial = _judge(request, access, rule, address)
    if denial is not None:
        _audit_refusal(request, rule, body, caller, denial)
        return _denied(denial)
    try:
        return await _as(caller, handler, request)
    except (Refused, ApiError) as refusal:
        _audit_refusal(request, rule, body, caller, refusal)
        raise


async def jsonrpc_gate(request: web.Request, handler: Any) -> web.StreamResponse:
    """JSON-RPC's rule: from a source in jsonrpc_allow, its body in time, as its caller."""
    access = request.app[ACCESS]
    address = request.remote or ""
    refusal = jsonrpc_refusal(access, address)
    if refusal is not None:
        return refusal
    try:
        await _read(request, access.body_timeout)
    except TimeoutError:
        return too_slow(access.body_timeout)
    return await _as(Caller(address), handler, request)


def jsonrpc_refusal(access: Access, address: str) -> web.Response | None:
    """The 403 for JSON-RPC from a source not in jsonrpc_allow; None: it may call."""
    if access.allowlist.allows(address):
        return None
    log.warning("JSON-RPC from %s refused: not in [server] jsonrpc_allow (%s); %s",
                address, access.allowlist.describe(), HOW_TO_ALLOW)  # fmt: skip
    return web.Response(status=403, text=f"JSON-RPC is not answered from {address}\n")


def _audit_refusal(
    request: web.Request, rule: Rule, body: Body, caller: Caller, why: Denial | Refused | ApiError
) -> None:
    if rule.action is None:
        return  # a read, or a change route without a rule of its own
    who = body.get("holder")
    resource = request.match_info.get("id") or body.get("resource")
    audit.refused(
        rule.action,
        resource if isinstance(resource, str) else None,
        holder=holder_of(request, who if isinstance(who, str) else None),
        caller=caller,
        code=why.code,
        reason=why.message,
    )


async def _read(request: web.Request, timeout: float) -> bytes:
    """The body, read within ``timeout`` (cached: the handler's own read gets it at once)."""
    if not request.body_exists:
        return b""
    if request.content.is_eof():  # it came with the header: nothing to wait for
        return await request.read()
    async with asyncio.timeout(timeout):
        return await request.read()


async def _as(caller: Caller, handler: Any, request: web.Request) -> web.StreamResponse:
    reset = CALLER.set(caller)
    try:
        return await handler(request)  # type: ignore[no-any-return]
    finally:
        CALLER.reset(reset)


def access_for(settings: Settings, config_dir: Path | None) -> Access:
    """The access rules the settings give (CredentialError: a token file is unusable)."""
    server = settings.server
    entries = expand(server.jsonrpc_allow, (c.url for c in settings.coordinator))
    return Access(
        tokens=load_tokens(server, config_dir),
        allowlist=Allowlist(entries),
        open_reads=server.open_reads,
        body_timeout=server.body_timeout,
    )


def announce(access: Access) -> None:
    """Say at start-up who may call what, and warn when any local user may do anything."""
    log.info(
        "JSON-RPC (Jenkins) is answered from %s; %s", access.allowlist.describe(), HOW_TO_ALLOW
    )
    if not access.tokens:
        log.warning(
            "no [server] token_files: REST changes are accepted from this machine only, where "
            "any local user can force-release and disable resources (docs/security.md)"
        )
    else:
        log.info("REST changes need a bearer token (%s); reads are %s",
                 ", ".join(access.tokens.names()),
                 "open" if access.open_reads else "for token holders")  # fmt: skip
