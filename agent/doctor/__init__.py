"""``resource-agent doctor``: check an installation and say how to fix what is wrong.

Each check is a small function answering ``Check`` results (name, ok, detail,
fix). The checks look at the system the way the agent will meet it: the
config it reads, the state directory and device nodes as its user, the port
it binds (``system``), the adb server it asks, and each Jenkins it reports to
(``services``, with the same client and request the coordinator sync uses);
and who may call it, and whether an agent runs on the state directory (``access``).
"""

from __future__ import annotations

import os
from pathlib import Path

from agent.config import find_config
from agent.doctor.access import check_jsonrpc_allow, check_state_lock, check_tls, check_tokens
from agent.doctor.report import Check, as_json, as_text
from agent.doctor.services import check_adb, check_coordinator
from agent.doctor.state import check_database, check_user, unknown_user
from agent.doctor.system import (
    agent_user,
    check_config,
    check_port,
    check_state_dir,
    check_udev_rules,
    check_usb_devices,
    rules_path,
)

__all__ = ["Check", "as_json", "as_text", "run"]


def run(config: Path | None, user_name: str | None = None) -> list[Check]:
    """Every check, in the order an administrator would fix things."""
    found = find_config(config)
    result, settings = check_config(found)
    checks = [result]
    if settings is None:
        return checks
    try:
        user = agent_user(user_name)
    except KeyError:
        return [*checks, unknown_user(user_name or f"uid {os.getuid()}")]
    config_dir = found.parent if found is not None else None
    checks.append(check_user(user_name, user))
    checks.append(check_state_dir(settings, user))
    checks.append(check_state_lock(settings))
    checks.append(check_database(settings, user))
    checks.append(check_port(settings))
    checks.append(check_jsonrpc_allow(settings))
    checks.append(check_tokens(settings, config_dir))
    checks.append(check_tls(settings, config_dir))
    if settings.udev.enabled:
        checks.append(check_udev_rules(rules_path()))
        checks += check_usb_devices(settings, user)
    checks += check_adb(settings)
    for sec in settings.coordinator:
        checks.append(check_coordinator(sec, sec.node or settings.agent.node, config_dir))
    return checks
