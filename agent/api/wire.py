"""Helpers shared by the JSON-RPC and REST handlers: request bodies and app keys."""

from __future__ import annotations

import contextlib
import json
import math
import re
from typing import Any, Protocol

import orjson
from aiohttp import web

from agent.authority import Authority
from agent.coordinator.status import SyncStatus
from agent.model import Hold, Holder
from agent.recovery.ladder import Recovery
from agent.sessions.manager import Sessions
from agent.waitlist import Waitlist

MAX_BODY = 64 * 1024
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONG_NUMBER = re.compile(rb"[0-9]{20}")

AUTHORITY = web.AppKey("authority", Authority)
IDENTITY = web.AppKey("identity", str)


class CoordinatorStatus(Protocol):
    """Where ``GET /api/coordinators`` gets each coordinator's sync state."""

    def status(self) -> list[SyncStatus]:
        """Each configured coordinator's sync status."""
        ...


COORDINATORS = web.AppKey("coordinators", CoordinatorStatus)


class Locker(Protocol):
    """What locks go through: the sessions' gate, or the authority itself."""

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
        """Lock, and (through a gate) wait for provisioning up to ``wait`` seconds."""
        ...


class DirectLock:
    """A ``Locker`` without sessions: the authority's lock, nothing to wait for."""

    def __init__(self, authority: Authority) -> None:
        self._authority = authority

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
        """Lock, durable on return."""
        return await self._authority.lock(
            resource_id, key, holder, lease, reserved_first=reserved_first
        )


LOCKER = web.AppKey("locker", Locker)
SESSIONS = web.AppKey("sessions", Sessions)
WAITLIST = web.AppKey("waitlist", Waitlist)
RECOVERY = web.AppKey("recovery", Recovery)


class BadJSON(ValueError):
    """The body is not JSON (or uses NaN/Infinity, which JSON does not have)."""


def _no_constants(name: str) -> Any:
    raise BadJSON(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        # 1e400 would become inf, which cannot be answered back as JSON.
        raise BadJSON(f"number {text[:40]} is out of range")
    return value


def parse_json(body: bytes) -> Any:
    """Parse a request body strictly; raise BadJSON with the reason.

    orjson reads a well-formed body in a fraction of the time; whatever it
    refuses, and any number of 20 digits or more (it reads integers past 64
    bits as floats, where an id must come back exactly as sent), goes to the
    standard parser, which says what is wrong.
    """
    if _LONG_NUMBER.search(body) is None:
        with contextlib.suppress(orjson.JSONDecodeError):
            return orjson.loads(body)
    return _parse_strictly(body)


def _parse_strictly(body: bytes) -> Any:
    try:
        value = json.loads(
            body.decode("utf-8"), parse_constant=_no_constants, parse_float=_finite_float
        )
    except BadJSON:
        raise
    except UnicodeDecodeError as exc:
        raise BadJSON("the body is not UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise BadJSON(f"malformed JSON: {exc}") from exc
    except ValueError as exc:  # an integer longer than Python converts (4300 digits)
        raise BadJSON(f"unusable number: {exc}") from exc
    except RecursionError as exc:
        raise BadJSON("the JSON is nested too deeply") from exc
    # JSON's \ud800-style escapes can smuggle in lone surrogates, which are not
    # Unicode: nothing downstream (SQLite, logs, Jenkins) can encode them. Only
    # such an escape can make one (strict UTF-8 decoding refuses raw ones), so
    # the costly check runs only for bodies that hold one.
    if _SURROGATE_ESCAPE.search(body) is None:
        return value
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadJSON(
            "the JSON holds a lone surrogate escape (\\ud800-\\udfff), which is not Unicode"
        ) from exc
    return value


def encode(value: Any) -> bytes:
    """Compact UTF-8 JSON for responses."""
    try:
        return orjson.dumps(value)
    except TypeError:  # an integer past 64 bits: an id echoed as it came
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
