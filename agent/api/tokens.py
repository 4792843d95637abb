"""Bearer tokens for REST changes: named, with a role, read from files, compared in constant time.

``[server] token_files = { ci = "ci.token", ops = "ops.token" }`` names each
token (the name is what logs and the audit trail show) and the file that holds
it, found like a coordinator's token: relative names in
``$CREDENTIALS_DIRECTORY`` under systemd (``LoadCredential=``), else beside
the config file (agent/credentials.py). ``[server] admin_tokens`` lists the
names with the admin role; the others have the user role.

Only a SHA-256 digest of each token is kept. A presented token is compared
with every known one, always all of them, with ``hmac.compare_digest``: the
time an answer takes says nothing about how close a guess was, nor which
token it was close to.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path

from agent.config import ServerSection
from agent.credentials import CredentialError, read_token
from agent.model import Role

# 16 characters of `openssl rand -hex 16` are 64 bits; ask for the 32 it prints.
MIN_LENGTH = 16
HOW_TO_MAKE = "openssl rand -hex 32"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True)
class Token:
    """A known token: its name and role; the secret only as a digest (never shown)."""

    name: str
    role: Role
    digest: bytes = field(repr=False)


class Tokens:
    """The tokens the agent knows; empty when ``token_files`` is not configured."""

    def __init__(self, tokens: dict[str, tuple[str, Role]] | None = None) -> None:
        """``tokens``: name -> (secret, role)."""
        self._tokens = [
            Token(name, role, _digest(secret)) for name, (secret, role) in (tokens or {}).items()
        ]

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def names(self) -> list[str]:
        """The configured names (never the tokens)."""
        return [t.name for t in self._tokens]

    def find(self, presented: str) -> Token | None:
        """The token ``presented`` is, or None; compares with every one, in constant time."""
        digest = _digest(presented)
        found = None
        for token in self._tokens:
            if hmac.compare_digest(digest, token.digest):
                found = token
        return found


def load_tokens(server: ServerSection, config_dir: Path | None) -> Tokens:
    """Read every ``token_files`` entry; CredentialError names the file and the problem."""
    admins = set(server.admin_tokens)
    read: dict[str, tuple[str, Role]] = {}
    for name, file in server.token_files.items():
        secret = read_token(file, config_dir, what=f"a token ({HOW_TO_MAKE})")
        if len(secret) < MIN_LENGTH:
            raise CredentialError(
                f"token {name!r} ({file}) is {len(secret)} characters: use at least "
                f"{MIN_LENGTH} random ones ({HOW_TO_MAKE})"
            )
        read[name] = (secret, Role.ADMIN if name in admins else Role.USER)
    seen: dict[bytes, str] = {}
    for name, (secret, _) in read.items():
        other = seen.setdefault(_digest(secret), name)
        if other != name:
            # One secret under two names would make the audit trail name the wrong one.
            raise CredentialError(f"tokens {other!r} and {name!r} are the same token")
    return Tokens(read)
