"""Config files for the agent, written through tomli-w (no hand-made TOML)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w


def to_toml(data: Mapping[str, Any]) -> str:
    """``data`` as TOML text; empty arrays of tables are left out (they mean none)."""
    return tomli_w.dumps({k: v for k, v in data.items() if v != []})


def merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` merged in: tables key by key, at any depth; other values replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def write_toml(path: Path, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as TOML to ``path``; answer the path."""
    path.write_text(to_toml(data))
    return path
