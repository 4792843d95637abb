"""Commands that run on the build machine itself: ``serve`` and ``doctor``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click
import uvloop

from agent.cli.base import Failed, main


@main.command()
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path),
    help="TOML config (default: $RESOURCE_AGENT_CONFIG, else /etc/resource-agent/agent.toml).",
)  # fmt: skip
@click.option("--listen", help="HOST:PORT to serve on (overrides [server] listen).")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the state database lives (overrides [agent] state_dir).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default=None,
    help="How much to log (overrides [agent] log_level, default info).",
)
def serve(
    config_path: Path | None, listen: str | None, state_dir: Path | None, log_level: str | None
) -> None:
    """Run the agent in the foreground."""
    from agent.config import (
        ConfigError,
        ServerSection,
        find_config,
        load_settings,
        resolve_state_dir,
    )
    from agent.daemon import Daemon
    from agent.store_errors import StoreError
    from agent.systemd import logs

    try:
        found = find_config(config_path)
        settings = load_settings(found)
        if listen is not None:
            try:
                # The rest of [server] stays: only the address changes.
                server = ServerSection.model_validate({**dict(settings.server), "listen": listen})
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--listen") from exc
            settings = settings.model_copy(update={"server": server})
    except ConfigError as exc:
        raise Failed(f"resource-agent: {exc}") from exc
    logs.setup(log_level or settings.agent.log_level)
    try:
        config_dir = found.parent if found is not None else None
        state = state_dir if state_dir is not None else resolve_state_dir(settings)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            code = runner.run(Daemon(settings, state, config_dir).run())
    except StoreError as exc:
        raise Failed(f"resource-agent: {exc}") from exc
    sys.exit(code)


@main.command()
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path),
    help="TOML config (default: $RESOURCE_AGENT_CONFIG, else /etc/resource-agent/agent.toml).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--user", help="Judge file access as this user (default: resource-agent).")
def doctor(config_path: Path | None, as_json: bool, user: str | None) -> None:
    """Check the installation; explain each problem and its fix. Exit 0 only if all pass."""
    from agent import doctor as checks

    results = checks.run(config_path, user)
    click.echo(checks.as_json(results) if as_json else checks.as_text(results))
    if not all(r.ok for r in results):
        sys.exit(Failed.exit_code)
