"""The OpenAPI 3 document served at ``GET /api/openapi.json``."""

from __future__ import annotations

from typing import Any

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "resource-agent", "version": "0.1.0"},
    "paths": {},
}
