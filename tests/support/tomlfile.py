"""Config files for the agent, written through tomli-w (no hand-made TOML)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w


def to_toml(data: Mapping[str, Any]) -> str:
    """``data`` as TOML text; empty arrays of tables are left out (they mean none)."""
    return tomli_w.dumps({k: v for k, v in data.items() if v != []})


def write_toml(path: Path, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as TOML to ``path``; answer the path."""
    path.write_text(to_toml(data))
    return path
