"""What every command shares: the group, ``--url``, the errors and their exit codes.

Exit codes: 0 done, 1 refused (the reason is printed), 2 usage error,
3 agent unreachable, 4 not allowed (no token, an unknown one, or one without
the role the change needs; the message names the role). Each non-zero code
has its own exception (click's usage errors are 2), raised where the problem
is found and printed by click.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import quote, urlsplit

import click

from agent import __version__
from agent.client import ApiRefusal, Client, Unreachable
from agent.model import Code

F = TypeVar("F", bound=Callable[..., Any])


class Failed(click.ClickException):
    """Exit 1: refused, or could not be done; printed as it is, without "Error:"."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        """Print the message alone on stderr."""
        click.echo(self.format_message(), err=True)


class Refusal(Failed):
    """Exit 1: the agent said no; ``refused (CODE): why``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"refused ({code}): {message}")


class NoAgent(Failed):
    """Exit 3: no agent answered at the URL."""

    exit_code = 3


class NotAllowed(Refusal):
    """Exit 4: the agent wants a token, or one with another role."""

    exit_code = 4


# The refusal codes that say who may call (agent.model Code.UNAUTHORIZED, FORBIDDEN).
NOT_ALLOWED = frozenset({int(Code.UNAUTHORIZED), int(Code.FORBIDDEN)})


def _check_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"expected http://HOST:PORT, got {value!r}")
    try:
        parts.port  # noqa: B018 -- parsing the port is the check
    except ValueError as exc:
        raise click.BadParameter(f"bad port in {value!r}: {exc}") from exc
    return value


def _read_token(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    try:
        token = Path(value).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {value}: {getattr(exc, 'strerror', exc)}") from exc
    if not token:
        raise click.BadParameter(f"{value} is empty")
    ctx.meta[TOKEN] = token


TOKEN = "resource-agent.token"
_url = click.option(
    "--url",
    default="http://127.0.0.1:8080",
    show_default=True,
    envvar="RESOURCE_AGENT_URL",
    callback=_check_url,
    help="The agent to talk to.",
)
_token_file = click.option(
    "--token-file",
    envvar="RESOURCE_AGENT_TOKEN_FILE",
    expose_value=False,
    callback=_read_token,
    help="A file holding the bearer token for changes (see docs/security.md).",
)


def url_option(command: F) -> F:
    """``--url`` and ``--token-file``: which agent, and the token to show it."""
    return _url(_token_file(command))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, "-V", "--version", prog_name="resource-agent")
def main() -> None:
    """Find phones and USB devices, and lock them for Jenkins builds and people.

    Exit codes: 0 done, 1 refused (the reason is printed), 2 usage error,
    3 agent unreachable. Shell completion (bash): eval
    "$(_RESOURCE_AGENT_COMPLETE=bash_source resource-agent)"; zsh_source and
    fish_source for zsh and fish (README.md).
    """


@contextlib.contextmanager
def client(url: str, timeout: float = 10.0) -> Iterator[Client]:
    """A client of the agent at ``url``; its failures become the CLI's exit codes."""
    ctx = click.get_current_context(silent=True)
    try:
        yield Client(url, timeout, token=ctx.meta.get(TOKEN) if ctx is not None else None)
    except Unreachable as exc:
        raise NoAgent(f"resource-agent: {exc}") from exc
    except ApiRefusal as exc:
        if exc.code in NOT_ALLOWED:
            raise NotAllowed(exc.code, exc.message) from exc
        raise Refusal(exc.code, exc.message) from exc
    except (KeyError, TypeError, IndexError) as exc:
        # JSON, but not the agent's: another service answers at that URL.
        raise NoAgent(f"resource-agent: no agent at {url}: the answer lacks {exc}") from exc


def call(
    url: str, fn: Callable[[Client], Any], show: Callable[[Any], None], timeout: float = 10.0
) -> None:
    """Ask the agent (``fn``) and print its answer (``show``)."""
    with client(url, timeout) as c:
        show(fn(c))


def quoted(value: str) -> str:
    """``value`` fit for a URL path or query."""
    return quote(value, safe="")


def holder_name() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


def print_hold(data: Any) -> None:
    hold = data["hold"]
    expires = f", expires {hold['expires']}" if hold["expires"] else ""
    click.echo(f"{hold['kind']} {data['resource']['id']}{expires}")
    click.echo(f"key: {hold['key']}")
