"""Where a coordinator's API token comes from, under systemd and without it.

A relative ``token_file`` (``token_file = "jenkins.token"``) names a systemd
credential: under the unit, ``LoadCredential=jenkins.token:/etc/resource-agent/jenkins.token``
copies the root-only file into ``$CREDENTIALS_DIRECTORY``, readable by the
agent's user alone. Without systemd (a person running ``serve`` or ``doctor``)
the same name is looked up beside the config file. An absolute path is used
as it is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


class CredentialError(Exception):
    """The token cannot be read or is empty; the message says which file and why."""


def token_path(
    token_file: str, config_dir: Path | None, environ: Mapping[str, str] | None = None
) -> Path:
    """The file ``token_file`` refers to (see the module docstring)."""
    path = Path(token_file)
    if path.is_absolute():
        return path
    env = os.environ if environ is None else environ
    credentials = env.get("CREDENTIALS_DIRECTORY")
    if credentials:
        return Path(credentials) / path
    return (config_dir or Path.cwd()) / path


def beside_config(file: str, config_dir: Path | None) -> Path:
    """A file named in the config (a ``ca_file``): relative to the config's directory."""
    path = Path(file)
    return path if path.is_absolute() else (config_dir or Path.cwd()) / path


def read_token(
    token_file: str,
    config_dir: Path | None,
    environ: Mapping[str, str] | None = None,
    *,
    what: str = "the Jenkins API token",
) -> str:
    """The token, stripped of surrounding white space; never empty (``what`` it should be)."""
    path = token_path(token_file, config_dir, environ)
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CredentialError(f"token file {path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CredentialError(f"token file {path}: not UTF-8 text") from exc
    if not token:
        raise CredentialError(f"token file {path} is empty: write {what} into it")
    return token
