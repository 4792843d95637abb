"""The TOML config file, validated into typed settings.

pydantic does the checking: strict types (TOML has real ones, so "30" is not a
number of seconds), unknown keys refused, and every error located by its key
path, which ``ConfigError`` turns into one line naming file, key and problem.
"""

from __future__ import annotations

import enum
import os
import re
import socket
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agent.addresses import COORDINATORS, parse_allow
from agent.config.sessions import SessionRule
from agent.discovery.match import MatchRule
from agent.discovery.static import StaticResource
from agent.model import MAX_SECONDS

DEFAULT_CONFIG = Path("/etc/resource-agent/agent.toml")
SYSTEM_STATE_DIR = Path("/var/lib/resource-agent")

Seconds = Annotated[float, Field(gt=0, le=MAX_SECONDS)]


class ConfigProblem(enum.Enum):
    """What is wrong with a config file, for the advice that goes with it (doctor)."""

    MISSING = "missing"  # no such file
    UNREADABLE = "unreadable"  # permissions, a directory...
    SYNTAX = "syntax"  # not TOML (or not UTF-8)
    INVALID = "invalid"  # TOML, but a key is unknown, mistyped or out of range


class ConfigError(Exception):
    """The config cannot be used; the message names the file, and each key and problem."""

    def __init__(self, message: str, problem: ConfigProblem = ConfigProblem.INVALID) -> None:
        super().__init__(message)
        self.problem = problem


class _Section(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def short_hostname() -> str:
    """The machine's host name without its domain."""
    return socket.gethostname().split(".", 1)[0] or "localhost"


def parse_hostport(value: str, default_host: str = "") -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` for IPv6) and check the port."""
    host, sep, port = value.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()):
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError(f"port {number} is out of range 0-65535")
    host = host.removeprefix("[").removesuffix("]") or default_host
    return host, number


class AgentSection(_Section):
    """``[agent]``: who this agent is and where it keeps its state."""

    node: str = Field(default_factory=short_hostname, min_length=1)
    state_dir: str | None = None
    identity: str | None = None
    grace_period: Seconds = 30.0
    # How often locks held by a coordinator's builds are checked against Jenkins.
    reap_interval: Seconds = 300.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @property
    def client_identity(self) -> str:
        """The clientInfo id of holds taken locally (REST, CLI)."""
        return self.identity or f"resource-agent://{socket.gethostname()}"


TOKEN_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
DEFAULT_JSONRPC_ALLOW = ("127.0.0.0/8", "::1", COORDINATORS)


class ServerSection(_Section):
    """``[server]``: the HTTP listeners, who may call what (docs/security.md), and limits."""

    # Jenkins' ResourceMonitor manager hard-codes port 8080.
    listen: str = "0.0.0.0:8080"
    jsonrpc_allow: list[str] = Field(default_factory=lambda: list(DEFAULT_JSONRPC_ALLOW))
    open_reads: bool = True
    token_files: dict[str, str] = Field(default_factory=dict)
    admin_tokens: list[str] = Field(default_factory=list)
    tls_listen: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    header_timeout: float = Field(default=5.0, gt=0, le=300)
    body_timeout: float = Field(default=10.0, gt=0, le=300)
    max_connections: int = Field(default=512, ge=1, le=100_000)
    max_connections_per_address: int = Field(default=64, ge=1, le=100_000)

    @field_validator("listen", "tls_listen")
    @classmethod
    def _check_listen(cls, value: str | None) -> str | None:
        if value is not None:
            parse_hostport(value)
        return value

    @field_validator("jsonrpc_allow")
    @classmethod
    def _check_allow(cls, value: list[str]) -> list[str]:
        for entry in value:
            parse_allow(entry)
        return value

    @field_validator("token_files")
    @classmethod
    def _check_token_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, path in value.items():
            if not TOKEN_NAME.match(name):
                raise ValueError(
                    f"token name {name!r} must be 1-32 lower-case letters, digits, '_' or '-'"
                )
            if not path:
                raise ValueError(f"token {name!r}: the file name is empty")
        return value

    @field_validator("admin_tokens")
    @classmethod
    def _check_admins(cls, value: list[str], info: ValidationInfo) -> list[str]:
        known = info.data.get("token_files", {})
        unknown = [name for name in value if name not in known]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a name in token_files")
        return value

    @model_validator(mode="after")
    def _check_together(self) -> ServerSection:
        if (self.tls_listen is None) != (self.tls_cert is None) or (self.tls_cert is None) != (
            self.tls_key is None
        ):
            raise ValueError("tls_listen, tls_cert and tls_key go together: give all or none")
        if self.max_connections_per_address > self.max_connections:
            raise ValueError("max_connections_per_address: more than max_connections")
        return self

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) to bind."""
        return parse_hostport(self.listen, "0.0.0.0")


class UdevSection(_Section):
    """``[udev]``: hotplug discovery."""

    enabled: bool = True


class RecoverySection(_Section):
    """``[recovery]``: how a stuck phone is brought back (docs/recovery.md)."""

    enabled: bool = True
    offline_after: Seconds = 30.0  # adb "offline" this long: stuck
    max_per_hour: int = Field(default=3, ge=1, le=60)  # ladders per device, then quarantine
    backoff: Seconds = 60.0  # the least time between two ladders of one device
    settle: Seconds = 20.0  # how long each rung waits for the phone to come back
    probe_timeout: Seconds = 10.0  # a shell that does not answer in this long is stuck
    uhubctl: str | None = None  # the uhubctl program, for hubs the kernel cannot switch


class AdbSection(_Section):
    """``[adb]``: the adb server that tracks Android phones."""

    enabled: bool = True
    server: str = "127.0.0.1:5037"
    allow_remote: bool = False
    battery_interval: Seconds = 300.0
    # A phone that does not answer a read in this long is stuck (docs/recovery.md).
    read_timeout: Seconds = 10.0

    @field_validator("server")
    @classmethod
    def _check_server(cls, value: str) -> str:
        host, port = parse_hostport(value)
        if not host or port == 0:
            raise ValueError(f"expected HOST:PORT of the adb server, got {value!r}")
        return value


class CoordinatorSection(_Section):
    """``[[coordinator]]``: one Jenkins controller to keep informed."""

    url: str
    node: str | None = Field(default=None, min_length=1)  # None: [agent] node
    tree: str = Field(default="external-resources", min_length=1)
    user: str | None = None
    token_file: str | None = None
    ca_file: str | None = None
    verify: bool = True
    timeout: Seconds = 10.0
    # The least time between two rounds of requests: a change after a quiet spell
    # goes out at once, what arrives within the window goes out together.
    batch_window: float = Field(default=0.05, ge=0, le=10)
    # Longest wait between retries (transient failures back off up to it;
    # bad credentials and a missing node are retried at this pace).
    retry_max: Seconds = 60.0

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if any(c.isspace() or not c.isprintable() for c in value):
            # urlsplit takes them, and Jenkins would get a different URL than the one meant.
            raise ValueError(f"a URL has no spaces or control characters, got {value!r}")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http(s) URL of a Jenkins root, got {value!r}")
        try:
            parts.port  # noqa: B018 -- parsing it is the check
        except ValueError as exc:
            raise ValueError(f"{value!r}: {exc}") from exc
        if parts.query or parts.fragment:
            # Paths are appended to the root; a query or fragment would end up inside them.
            raise ValueError(f"a Jenkins root URL has no query or fragment, got {value!r}")
        return value if value.endswith("/") else value + "/"

    @field_validator("user")
    @classmethod
    def _check_user(cls, value: str | None) -> str | None:
        if value is not None and (not value or ":" in value):
            # Basic auth joins user and token with ':'; Jenkins user ids never hold one.
            raise ValueError(f"a Jenkins user name is not empty and has no ':', got {value!r}")
        return value

    @model_validator(mode="after")
    def _check_credentials(self) -> CoordinatorSection:
        if (self.user is None) != (self.token_file is None):
            raise ValueError("user and token_file go together: give both or neither")
        return self


class Settings(_Section):
    """The whole configuration."""

    agent: AgentSection = Field(default_factory=AgentSection)
    server: ServerSection = Field(default_factory=ServerSection)
    udev: UdevSection = Field(default_factory=UdevSection)
    recovery: RecoverySection = Field(default_factory=RecoverySection)
    adb: AdbSection = Field(default_factory=AdbSection)
    coordinator: list[CoordinatorSection] = Field(default_factory=list)
    resource: list[StaticResource] = Field(default_factory=list)
    match: list[MatchRule] = Field(default_factory=list)
    session: list[SessionRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_unique_ids(self) -> Settings:
        seen: dict[str, int] = {}
        for index, res in enumerate(self.resource):
            if res.id in seen:
                # A whole-model check has no key path of its own: name it here.
                raise ValueError(
                    f"resource[{index}].id: {res.id!r} is declared twice"
                    f" (first as resource[{seen[res.id]}].id)"
                )
            seen[res.id] = index
        return self


def _describe_error(err: Any) -> str:
    loc = ""
    for part in err["loc"]:
        loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    return f"{loc}: {msg}" if loc else msg


def load_settings(path: Path | None) -> Settings:
    """Read and validate ``path``; None means built-in defaults."""
    if path is None:
        return Settings()
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError as exc:
        raise ConfigError(f"config {path} does not exist", ConfigProblem.MISSING) from exc
    except OSError as exc:
        raise ConfigError(
            f"config {path}: cannot read: {exc.strerror or exc}", ConfigProblem.UNREADABLE
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path}: not valid TOML: {exc}", ConfigProblem.SYNTAX) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config {path}: not valid TOML: not UTF-8 text ({exc.reason} at byte {exc.start})",
            ConfigProblem.SYNTAX,
        ) from exc
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = [_describe_error(err) for err in exc.errors()]
        if len(problems) == 1:
            raise ConfigError(f"config {path}: {problems[0]}") from exc
        listed = "".join(f"\n  {p}" for p in problems)
        raise ConfigError(f"config {path} has {len(problems)} problems:{listed}") from exc


def find_config(explicit: Path | None) -> Path | None:
    """``--config``, else ``$RESOURCE_AGENT_CONFIG``, else the system file if present."""
    if explicit is not None:
        return explicit
    env = os.environ.get("RESOURCE_AGENT_CONFIG")
    if env:
        return Path(env)
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def resolve_state_dir(settings: Settings) -> Path:
    """The configured state dir, else systemd's, else the system one, else the user's."""
    if settings.agent.state_dir:
        return Path(settings.agent.state_dir)
    if os.environ.get("STATE_DIRECTORY"):  # systemd's StateDirectory=
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    if SYSTEM_STATE_DIR.is_dir() and os.access(SYSTEM_STATE_DIR, os.W_OK):
        return SYSTEM_STATE_DIR
    if not SYSTEM_STATE_DIR.exists() and os.access(SYSTEM_STATE_DIR.parent, os.W_OK):
        return SYSTEM_STATE_DIR
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "resource-agent"
