"""Options and arguments several commands share: ``--json``, durations, resource ids.

A duration is a number of seconds that must be finite and within the
agent's limits: ``--timeout inf`` or ``--lease nan`` is a usage error (exit
2) here, not a refusal from the agent. Resource ids complete in the shell
from the agent's own list.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import click
from click.shell_completion import CompletionItem

from agent.client import ApiRefusal, Client, Unreachable
from agent.model import MAX_SECONDS

FC = TypeVar("FC", bound=Callable[..., Any])
COMPLETION_TIMEOUT = 1.0  # a shell waiting on Tab should not hang on a dead agent

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the agent's JSON answer instead of text."
)


class Seconds:
    """A finite number of seconds within the agent's limits; a usage error otherwise.

    Used as an option's ``callback`` (with ``type=float``): ``inf`` and ``nan``
    are floats to click, but no duration to the agent.
    """

    def __init__(self, zero: bool = False, minimum: float = 0.0) -> None:
        self.zero = zero  # 0 allowed ("do not wait")
        self.minimum = minimum

    def __call__(self, ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        """Check ``value`` (None: the option was not given)."""
        if value is None:
            return None
        low_ok = value >= self.minimum if self.zero or self.minimum else value > 0
        if not math.isfinite(value) or not low_ok or value > MAX_SECONDS:
            raise click.BadParameter(f"{value!r} is not {self.describe()}")
        return value

    def describe(self) -> str:
        """The allowed range, in words (also shown in --help)."""
        low = f"at least {self.minimum:g}" if self.minimum else ("0 or more" if self.zero else
                                                                 "more than 0")  # fmt: skip
        return f"a number of seconds, {low} and at most {MAX_SECONDS:.0f} (a week)"


def seconds_option(name: str, help: str, kind: Seconds, **kwargs: Any) -> Callable[[FC], FC]:
    """An option taking a duration, its limits in its help."""
    return click.option(
        name,
        type=float,
        metavar="SECONDS",
        callback=kind,
        help=f"{help} ({kind.describe()}).",
        **kwargs,
    )


def complete_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Resource ids the agent has, for shell completion (nothing when it does not answer)."""
    url = ctx.params.get("url") or "http://127.0.0.1:8080"
    try:
        listed = Client(url, timeout=COMPLETION_TIMEOUT).get("resources")["resources"]
    except (Unreachable, ApiRefusal, KeyError, TypeError):
        return []
    return [CompletionItem(r["id"], help=r.get("state")) for r in listed
            if str(r.get("id", "")).startswith(incomplete)]  # fmt: skip


resource_argument = click.argument("resource_id", metavar="ID", shell_complete=complete_ids)
