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
from agent.api.schemas import ANSWERS, CODE_TABLE
from agent.model import EventType

JSONRPC_METHODS = tuple(METHODS)
JSONRPC_PARAMS: tuple[type[BaseModel], ...] = tuple(model for model, _ in METHODS.values())

# What each REST error status means; every /api/ error has the Error body.
ERROR_STATUSES = {
    400: "The body is not JSON, or not a JSON object.",
    403: "Wrong key: the resource is held with another key (code 6).",
    404: "No resource with this id (code 1), or no such route (code 22).",
    409: "The resource's state says no: disabled, absent, unhealthy, held, not held, "
    "expired key, no lease (codes 2-5, 7, 8, 10).",
    413: "The body is larger than 64 KiB (code 21).",
    422: "A field is missing, unknown, of the wrong type or out of range; "
    "the message names it (code 9).",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _model_schemas() -> dict[str, Any]:
    """Every model's schema, named by its class, with refs into components."""
    answers: tuple[type[BaseModel], ...] = (*ANSWERS, MonitorResult)
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
            "id": _ref("JsonRpcId"),
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
            "result": _ref("MonitorResult"),
            "id": _ref("JsonRpcId"),
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
            "id": _ref("JsonRpcId"),
        },
        "required": ["jsonrpc", "error", "id"],
        "additionalProperties": False,
        "description": "Only for malformed requests; refusals are results with status NO.",
    },
    "JsonRpcResponse": {"oneOf": [_ref("JsonRpcResult"), _ref("JsonRpcError")]},
}

SCHEMAS: dict[str, Any] = {**_model_schemas(), **JSONRPC_SCHEMAS}


def _json_content(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"application/json": media}


def _errors(*statuses: int) -> dict[str, Any]:
    return {
        str(s): {"description": ERROR_STATUSES[s], "content": _json_content(_ref("Error"))}
        for s in statuses
    }


def _ok(description: str, schema: str) -> dict[str, Any]:
    return {"200": {"description": description, "content": _json_content(_ref(schema))}}


ID_PARAMETER = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The resource id (URL-encoded).",
    "schema": {"type": "string"},
}

BODY_ERRORS = (400, 413, 422)


def _action(
    action: str,
    summary: str,
    body: str,
    answer: str,
    refusals: tuple[int, ...],
    *,
    required: bool = False,
) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "operationId": action,
            "tags": ["resources"],
            "parameters": [ID_PARAMETER],
            "requestBody": {"required": required, "content": _json_content(_ref(body))},
            "responses": {**_ok("Done, and on disk.", answer), **_errors(*refusals, *BODY_ERRORS)},
        }
    }


RESULT_EXAMPLE = {
    "jsonrpc": "2.0",
    "result": {
        "status": "OK",
        "code": 0,
        "message": "reserved pixel-7",
        "key": "kq3V0xgkQvU0_0qR4fHqkB1m",
        "time": 1795515333000,
        "timezone": 3600,
        "isotime": "2026-11-24T10:15:33+01:00",
    },
    "id": "183729",
}

PATHS: dict[str, Any] = {
    "/": {
        "post": {
            "summary": "ResourceMonitor JSON-RPC 2.0 (what Jenkins calls)",
            "operationId": "jsonrpc",
            "tags": ["jsonrpc"],
            "description": "Methods: "
            + ", ".join(JSONRPC_METHODS)
            + ". Any Content-Type is accepted. A batch (array) is answered with an array.",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json-rpc": {
                        "schema": {
                            "oneOf": [
                                _ref("JsonRpcRequest"),
                                {"type": "array", "minItems": 1, "items": _ref("JsonRpcRequest")},
                            ]
                        },
                        "example": {
                            "jsonrpc": "2.0",
                            "method": "ResourceMonitor.Resources.Reserve",
                            "params": {
                                "resource": "pixel-7",
                                "timeout": 3,
                                "clientInfo": {
                                    "id": "http://jenkins.example:8080/",
                                    "url": "job/phone-tests/",
                                },
                            },
                            "id": "183729",
                        },
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "A response, or an array of them for a batch.",
                    "content": {
                        "application/json-rpc": {
                            "schema": {
                                "oneOf": [
                                    _ref("JsonRpcResponse"),
                                    {"type": "array", "items": _ref("JsonRpcResponse")},
                                ]
                            },
                            "example": RESULT_EXAMPLE,
                        }
                    },
                },
                "204": {"description": "Only notifications were sent: nothing to answer."},
                **_errors(413),
            },
        }
    },
    "/api/openapi.json": {
        "get": {
            "summary": "This document",
            "operationId": "openapi",
            "tags": ["meta"],
            "responses": {
                "200": {"description": "OpenAPI 3.1", "content": _json_content({"type": "object"})}
            },
        }
    },
    "/api/health": {
        "get": {
            "summary": "Liveness and a summary",
            "operationId": "health",
            "tags": ["meta"],
            "responses": _ok("Serving.", "Health"),
        }
    },
    "/api/coordinators": {
        "get": {
            "summary": "Each Jenkins coordinator's sync state",
            "operationId": "coordinators",
            "tags": ["meta"],
            "responses": _ok("Empty when none is configured.", "Coordinators"),
        }
    },
    "/api/resources": {
        "get": {
            "summary": "Every resource, sorted by id; keys are never shown",
            "operationId": "listResources",
            "tags": ["resources"],
            "responses": _ok("The resources.", "ResourceList"),
        }
    },
    "/api/resources/{id}": {
        "get": {
            "summary": "One resource",
            "operationId": "showResource",
            "tags": ["resources"],
            "parameters": [ID_PARAMETER],
            "responses": {**_ok("The resource.", "ResourceOut"), **_errors(404)},
        }
    },
    "/api/resources/{id}/history": {
        "get": {
            "summary": "Who held the resource, when, and how it ended; newest first",
            "operationId": "history",
            "tags": ["resources"],
            "parameters": [
                ID_PARAMETER,
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100},
                },
            ],
            "responses": {**_ok("The holds.", "History"), **_errors(404, 422)},
        }
    },
    "/api/resources/{id}/reserve": _action(
        "reserve",
        "Reserve for timeout seconds; answers the key",
        "ReserveBody",
        "HoldAnswer",
        (404, 409),
    ),
    "/api/resources/{id}/lock": _action(
        "lock",
        "Lock the reservation held with key, or a free resource without key",
        "LockBody",
        "HoldAnswer",
        (403, 404, 409),
    ),
    "/api/resources/{id}/release": _action(
        "release",
        "Release the hold held with key, or any hold with force",
        "ReleaseBody",
        "ReleaseAnswer",
        (403, 404, 409),
        required=True,
    ),
    "/api/resources/{id}/renew": _action(
        "renew",
        "Renew a reservation or lease: lease seconds from now, or its own length",
        "RenewBody",
        "HoldAnswer",
        (403, 404, 409),
        required=True,
    ),
    "/api/resources/{id}/enable": _action(
        "enable", "Enable: let the resource take holds", "EmptyBody", "ResourceOut", (404,)
    ),
    "/api/resources/{id}/disable": _action(
        "disable",
        "Disable: refuse new holds (an existing one stays)",
        "DisableBody",
        "ResourceOut",
        (404,),
    ),
}

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
        {"name": "meta", "description": "The agent itself."},
    ],
    "paths": PATHS,
    "components": {"schemas": SCHEMAS},
}
