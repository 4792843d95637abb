"""The audit trail: one structured log line per change, and one per refused change.

Changes come from the event bus, a group commit's together, so a line is
written only for what is on disk -- the lines of a group with one write -- and
says what the history says (agent/actions.py names the action and
carries the caller). Refusals come from the API, which is the only place they
are seen: changes are logged at INFO, refusals at DEBUG with their reason.

Lines are ``key=value`` pairs on the ``agent.audit`` logger, journald-friendly:
no colour, one line whatever the values hold (a value with a space, a quote,
``=`` or a control character is written as a JSON string, so a holder URL
with a newline cannot forge a second line). Keys and tokens never appear:
a token is named by its name in ``[server] token_files``.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Sequence

from agent.actions import action_of, detail_of, holder_of
from agent.model import Action, Caller, Event, Holder
from agent.systemd.logs import log_lines

log = logging.getLogger("agent.audit")

_PLAIN = re.compile(r"^[A-Za-z0-9._:/@+,-]+$")
AGENT = "agent"  # the caller of what the agent does by itself


@functools.lru_cache(maxsize=1024)  # the same ids, URLs and addresses, line after line
def _value(value: str) -> str:
    return value if _PLAIN.match(value) else json.dumps(value, ensure_ascii=False)


def line(**fields: str | None) -> str:
    """``key=value ...`` in the order given; None and empty values are left out."""
    return " ".join([f"{k}={_value(v)}" for k, v in fields.items() if v])


def _who(
    action: Action, resource_id: str, holder: Holder | None, caller: Caller | None
) -> list[str]:
    """The ``key=value`` parts naming what was done to what, for whom and by whom."""
    # Built straight into parts (no dict, no keywords): one line per change is on
    # the lock path.
    parts = [f"action={_value(action.value)}"]
    if resource_id:
        parts.append(f"resource={_value(resource_id)}")
    if holder is not None:
        if holder.id:
            parts.append(f"holder_id={_value(holder.id)}")
        if holder.url:
            parts.append(f"holder_url={_value(holder.url)}")
    if caller is None:
        parts.append(f"address={AGENT}")
    else:
        if caller.address:
            parts.append(f"address={_value(caller.address)}")
        parts.append(f"token={_value(caller.token or '-')}")
    return parts


def audit(events: Sequence[Event]) -> None:
    """A group subscriber: the lines for a commit's changes (none for other events)."""
    lines = []
    for event in events:
        action = action_of(event)
        if action is not None:
            lines.append(_changed(event, action))
    log_lines(log, logging.INFO, lines)


def _changed(event: Event, action: Action) -> str:
    parts = _who(action, event.resource.id, holder_of(event), event.caller)
    parts.append("outcome=ok")
    detail = detail_of(event, action)
    if detail:
        parts.append(f"detail={_value(detail)}")
    return " ".join(parts)


def refused(
    action: Action,
    resource_id: str | None,
    *,
    holder: Holder | None,
    caller: Caller | None,
    code: int,
    reason: str,
) -> None:
    """The line for a change the agent said no to, and why."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    parts = _who(action, resource_id or "", holder, caller)
    log.debug("%s %s", " ".join(parts), line(outcome="refused", code=str(code), reason=reason))
