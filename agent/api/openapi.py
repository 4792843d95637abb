"""The OpenAPI 3.1 document served at ``GET /api/openapi.json``.

Component schemas come from the pydantic models that check the requests
(``bodies.py``, the JSON-RPC params) and build the answers (``schemas.py``,
``MonitorResult``), so the document says exactly what the code does; only the
paths, and the JSON-RPC envelopes around the models, are written here. Tests
validate real requests and answers against it. OpenAPI 3.1 schemas are JSON
Schema 2020-12.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from agent.api.bodies import BODIES
from agent.api.jsonrpc import METHODS, MonitorResult
from agent.api.paths import JSONRPC_METHODS, PATHS, ref
from agent.api.schemas import ANSWERS, CODE_TABLE
from agent.api.stream import STREAM_MODELS
from agent.api.viewpaths import VIEW_PATHS
from agent.model import EventType

JSONRPC_PARAMS: tuple[type[BaseModel], ...] = tuple(model for model, _ in METHODS.values())


def _model_schemas() -> dict[str, Any]:
    """Every model's schema, named by its class, with refs into components."""
    answers: tuple[type[BaseModel], ...] = (*ANSWERS, *STREAM_MODELS, MonitorResult)
    modes: list[tuple[type[BaseModel], JsonSchemaMode]] = [(m, "serialization") for m in answers]
    modes += [(m, "validation") for m in (*BODIES, *JSONRPC_PARAMS)]
    _, top = models_json_schema(modes, ref_template="#/components/schemas/{model}")
    return dict(top["$defs"])


JSONRPC_SCHEMAS: dict[str, Any] = {
    "JsonRpcId": {
        "type": ["string", "number", "null"],
        "description": "Echoed unchanged; jsonrpc4j sends a number as a string.",
    },
    "JsonRpcRequest": {
        "type": "object",
        "properties": {
            "jsonrpc": {"const": "2.0"},
            "method": {"type": "string", "enum": list(JSONRPC_METHODS)},
            "params": {
                "description": "The params object, or a one-element array holding it.",
                "oneOf": [
                    {"type": "object"},
                    {"type": "array", "minItems": 1, "maxItems": 1, "items": {"type": "object"}},
                ],
            },
            "id": ref("JsonRpcId"),
        },
        "required": ["jsonrpc", "method", "params"],
        "description": "Without id it is a notification: done, not answered. Params: "
        + ", ".join(f"{m}: {model.__name__}" for m, (model, _) in METHODS.items())
        + ".",
    },
    "JsonRpcResult": {
        "type": "object",
        "properties": {
            "jsonrpc": {"const": "2.0"},
            "result": ref("MonitorResult"),
            "id": ref("JsonRpcId"),
        },
        "required": ["jsonrpc", "result", "id"],
        "additionalProperties": False,
    },
    "JsonRpcError": {
        "type": "object",
        "properties": {
            "jsonrpc": {"const": "2.0"},
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "integer", "enum": [-32700, -32600, -32601, -32602, -32603]},
                    "message": {"type": "string"},
                    "data": {"type": "string", "description": "What exactly is wrong."},
                },
                "required": ["code", "message"],
                "additionalProperties": False,
            },
            "id": ref("JsonRpcId"),
        },
        "required": ["jsonrpc", "error", "id"],
        "additionalProperties": False,
        "description": "Only for malformed requests; refusals are results with status NO.",
    },
    "JsonRpcResponse": {"oneOf": [ref("JsonRpcResult"), ref("JsonRpcError")]},
}

SCHEMAS: dict[str, Any] = {**_model_schemas(), **JSONRPC_SCHEMAS}

SECURITY_SCHEMES: dict[str, Any] = {
    "bearerToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "A token named in [server] token_files, with the user role or (for "
        "forced releases, enable and disable) the admin role. Without any configured, "
        "changes are accepted from loopback only; with them, from loopback a change that "
        "carries the holder's key needs none. JSON-RPC takes no token: it is answered "
        "from [server] jsonrpc_allow only (HTTP 403 otherwise). See docs/security.md.",
    }
}


def _paths() -> dict[str, Any]:
    """The REST and JSON-RPC paths, with the view's (``/`` has both POST and GET)."""
    paths = {path: dict(item) for path, item in PATHS.items()}
    for path, item in VIEW_PATHS.items():
        paths.setdefault(path, {}).update(item)
    return paths


DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "resource-agent",
        "version": "0.1.0",
        "description": "The node agent's API: JSON-RPC on POST / for Jenkins' External "
        "Resource Dispatcher, REST under /api/ for people and scripts. Errors under /api/ "
        f"are {{'error': {{'code', 'message'}}}} (an unknown /api/ route is 404, a method a "
        f"route does not take 405, both code 22). Refusal codes: {CODE_TABLE}. "
        "Event types in history and sinks: " + ", ".join(e.value for e in EventType) + ".",
    },
    "tags": [
        {"name": "jsonrpc", "description": "What Jenkins calls."},
        {"name": "resources", "description": "Resources and their holds."},
        {"name": "sessions", "description": "Provisioning and teardown around each lock."},
        {"name": "meta", "description": "The agent itself."},
        {"name": "view", "description": "The status page, the event stream and metrics."},
    ],
    "paths": _paths(),
    "components": {"schemas": SCHEMAS, "securitySchemes": SECURITY_SCHEMES},
    # Reads are open by default ([server] open_reads); a token is always accepted.
    "security": [{}, {"bearerToken": []}],
}
