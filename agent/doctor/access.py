"""Checks of who may call the agent, and of the one agent per state directory.

The same code the agent runs decides: the allowlist is resolved as the agent
resolves it, the token files are read as the agent reads them, the TLS files
loaded as the agent loads them, and the state directory's lock is asked as a
second agent would find it.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from agent.api.allow import HOW_TO_ALLOW, RESOLVE_TIMEOUT, Allowlist, expand
from agent.api.limits import listeners_for
from agent.api.tokens import HOW_TO_MAKE, load_tokens
from agent.config import Settings, resolve_state_dir
from agent.credentials import CredentialError
from agent.doctor.report import Check, failed, passed, warned
from agent.statelock import in_use


def check_state_lock(settings: Settings) -> Check:
    """Whether an agent runs on the state directory now (a second one would not start)."""
    name = "state lock"
    path = resolve_state_dir(settings)
    who = in_use(path)
    if who is None:
        return passed(name, f"no agent runs on {path}")
    return passed(name, f"an agent ({who}) is running on {path}; a second one would not start")


def check_jsonrpc_allow(settings: Settings) -> Check:
    """Where Jenkins' JSON-RPC is answered from, and every host name there resolves."""
    name = "JSON-RPC sources"
    entries = expand(settings.server.jsonrpc_allow, (c.url for c in settings.coordinator))
    allowlist = Allowlist(entries)
    with contextlib.suppress(TimeoutError):  # a dead DNS: what did not resolve in time did not
        asyncio.run(asyncio.wait_for(allowlist.resolve(), RESOLVE_TIMEOUT))
    unresolved = allowlist.unresolved()
    if unresolved:
        return failed(
            name,
            f"{', '.join(unresolved)} does not resolve (answered from {allowlist.describe()})",
            "check the name in [server] jsonrpc_allow or the coordinator's url "
            "(getent hosts NAME); until it resolves, that Jenkins' calls are refused",
        )
    return passed(name, f"answered from {allowlist.describe()}; {HOW_TO_ALLOW}")


def check_tokens(settings: Settings, config_dir: Path | None) -> Check:
    """The API tokens can be read; without any, say what any local user may do."""
    name = "API tokens"
    server = settings.server
    if not server.token_files:
        return warned(
            name,
            "none configured: REST changes are accepted from this machine only, where any "
            "local user can force-release and disable resources",
            f"set [server] token_files (and admin_tokens), one file per token ({HOW_TO_MAKE}); "
            "see docs/security.md",
        )
    try:
        load_tokens(server, config_dir)
    except CredentialError as exc:
        return failed(
            name,
            str(exc),
            f"write a token into that file ({HOW_TO_MAKE} > FILE; chmod 600), or run doctor "
            "as root if the file is root's",
        )
    admins = ", ".join(server.admin_tokens) or "none"
    return passed(name, f"{', '.join(server.token_files)} readable; admin role: {admins}")


def check_tls(settings: Settings, config_dir: Path | None) -> Check:
    """The TLS listener's certificate and key load (when one is configured)."""
    name = "TLS listener"
    server = settings.server
    if server.tls_listen is None:
        return passed(name, "none configured ([server] tls_listen)")
    try:
        listeners_for(server, config_dir)
    except OSError as exc:
        return failed(
            name,
            str(exc),
            "set tls_cert and tls_key to a PEM certificate (chain) and its private key",
        )
    return passed(name, f"{server.tls_listen} with {server.tls_cert}")
