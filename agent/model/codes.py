"""Refusals: the stable codes every interface answers with, and the exception that carries one."""

from __future__ import annotations

import enum


class Code(enum.IntEnum):
    """Stable refusal codes, shared by JSON-RPC, REST and the CLI (docs/api.md)."""

    OK = 0
    UNKNOWN_RESOURCE = 1
    DISABLED = 2
    ABSENT = 3
    UNHEALTHY = 4
    HELD = 5
    WRONG_KEY = 6
    EXPIRED = 7
    NOT_HELD = 8
    INVALID_ARGUMENT = 9
    NO_LEASE = 10
    CLEANING = 11  # released moments ago and still being cleaned
    QUARANTINED = 12
    PROVISIONING_FAILED = 13  # locked, then released: preparing it failed
    PRESENT = 14  # forget refused: the resource is connected
    NOT_SAVED = 15  # the state directory would not take the change (full, read-only): none made
    SAVE_UNCERTAIN = 16  # the disk failed while saving it: the change may or may not be in effect
    # Wire-level problems (REST and CLI only; JSON-RPC has its own error codes).
    MALFORMED_REQUEST = 20
    TOO_LARGE = 21
    NOT_FOUND = 22
    INTERNAL = 23
    # Who may call (REST and CLI only; a refused JSON-RPC source gets a bare HTTP 403).
    UNAUTHORIZED = 24  # no bearer token where one is needed, or one the agent does not know
    FORBIDDEN = 25  # the token lacks the role the change needs
    TOO_SLOW = 26  # the request body did not arrive in time
    BUSY = 27  # too many connections, in all or from one address


class Refused(Exception):
    """A command the rules say no to; carries a stable code and a clear message."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
