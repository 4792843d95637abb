"""The OpenAPI 3.1 document served at ``GET /api/openapi.json``.

It describes every route the app registers, JSON-RPC on ``POST /`` included,
with strict schemas (``additionalProperties: false``): tests validate real
answers against it, so a field added to an answer without being documented
here fails the suite. OpenAPI 3.1 schemas are JSON Schema 2020-12.
"""

from __future__ import annotations

from typing import Any

from agent.api.jsonrpc import METHODS
from agent.coordinator.sync import SyncState
from agent.model import Code, EventType, HoldKind, Kind
from agent.registry import MAX_SECONDS

JSONRPC_METHODS = tuple(METHODS)
STATES = ("free", "reserved", "locked", "disabled", "absent", "unhealthy")
END_REASONS = ("released", "forced", "reservation expired", "lease expired")
COORDINATOR_STATES = tuple(s.value for s in SyncState)
COORDINATOR_FAILURES = ("unreachable", "server", "auth", "config", "no-node", "no-resource",
                        "rejected", "internal")  # fmt: skip

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


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [schema, {"type": "null"}]}


def _object(
    properties: dict[str, Any], required: list[str] | None = None, description: str = ""
) -> dict[str, Any]:
    """A closed object: every property required unless ``required`` says otherwise."""
    out: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }
    if description:
        out["description"] = description
    return out


TIME = {"type": "string", "format": "date-time", "description": "ISO 8601 with the UTC offset"}
SECONDS = {"type": "number", "exclusiveMinimum": 0, "maximum": int(MAX_SECONDS)}
CODE_TABLE = "; ".join(f"{int(c)} {c.name}" for c in Code)


def _hold(with_key: bool) -> dict[str, Any]:
    props: dict[str, Any] = {
        "kind": {"type": "string", "enum": [k.value for k in HoldKind]},
        "holder": _ref("Holder"),
        "since": TIME,
        "expires": {
            **_nullable(TIME),
            "description": "Reservation deadline or lease end; null for a lock without lease.",
        },
    }
    if with_key:
        props["key"] = {"type": "string", "description": "The capability to lock or release."}
        return _object(props, description="A hold as its taker sees it, with the key.")
    return _object(props, description="A hold as everyone sees it: never the key.")


SCHEMAS: dict[str, Any] = {
    "Error": _object(
        {
            "error": _object(
                {
                    "code": {
                        "type": "integer",
                        "enum": [int(c) for c in Code if c is not Code.OK],
                        "description": f"Stable refusal code: {CODE_TABLE}.",
                    },
                    "message": {"type": "string", "description": "What is wrong, for people."},
                }
            )
        },
        description="Every /api/ error.",
    ),
    "Holder": _object(
        {
            "id": {
                "type": "string",
                "description": "The system: a Jenkins root URL, or the agent's identity.",
            },
            "url": {
                "type": "string",
                "description": "Who in it: a task or build URL, or user@host.",
            },
        }
    ),
    "Hold": _hold(with_key=False),
    "HoldWithKey": _hold(with_key=True),
    "Resource": _object(
        {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "kind": {"type": "string", "enum": [k.value for k in Kind]},
            "description": {"type": "string"},
            "state": {
                "type": "string",
                "enum": list(STATES),
                "description": "The hold, else why it cannot be held, else free.",
            },
            "enabled": {"type": "boolean"},
            "disabled_reason": {"type": "string"},
            "present": {"type": "boolean", "description": "Seen by its source right now."},
            "gone": {"type": "boolean", "description": "Absent for the whole grace period."},
            "health": {
                **_nullable({"type": "string"}),
                "description": "Null when usable, else why not.",
            },
            "holder": _nullable(_ref("Hold")),
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        }
    ),
    "ResourceList": _object({"resources": {"type": "array", "items": _ref("Resource")}}),
    "HoldAnswer": _object({"resource": _ref("Resource"), "hold": _ref("HoldWithKey")}),
    "ReleaseAnswer": _object({"resource": _ref("Resource"), "released": _ref("Hold")}),
    "HistoryEntry": _object(
        {
            "kind": {"type": "string", "enum": [k.value for k in HoldKind]},
            "holder": _ref("Holder"),
            "reserved_at": _nullable(TIME),
            "locked_at": _nullable(TIME),
            "ended_at": {**_nullable(TIME), "description": "Null while the hold lasts."},
            "end_reason": _nullable({"type": "string", "enum": list(END_REASONS)}),
        }
    ),
    "History": _object({"history": {"type": "array", "items": _ref("HistoryEntry")}}),
    "Health": _object(
        {
            "status": {"type": "string", "const": "ok"},
            "resources": {"type": "integer", "minimum": 0},
            "held": {"type": "integer", "minimum": 0},
        }
    ),
    "Coordinator": _object(
        {
            "url": {"type": "string", "description": "The Jenkins root URL."},
            "node": {"type": "string", "description": "The Jenkins node the resources are on."},
            "tree": {"type": "string", "description": "The metadata tree holding them."},
            "state": {
                "type": "string",
                "enum": list(COORDINATOR_STATES),
                "description": "starting and reconciling: reading Jenkins' state; syncing: "
                "sending changes; retrying: a transient failure, backing off; failing: a "
                "configuration problem (credentials, permission, node), retried slowly.",
            },
            "pending": {
                "type": "integer",
                "minimum": 0,
                "description": "Resources with changes Jenkins has not taken yet.",
            },
            "last_success": {**_nullable(TIME), "description": "Last round that went through."},
            "last_error": _nullable(
                _object(
                    {
                        "at": TIME,
                        "kind": {"type": "string", "enum": list(COORDINATOR_FAILURES)},
                        "message": {"type": "string", "description": "What to fix, if anything."},
                    }
                )
            ),
            "next_retry": _nullable(TIME),
            "consecutive_failures": {"type": "integer", "minimum": 0},
            "requests": {"type": "integer", "minimum": 0, "description": "Requests sent so far."},
        },
        description="One Jenkins controller the agent keeps informed, and how that goes.",
    ),
    "Coordinators": _object({"coordinators": {"type": "array", "items": _ref("Coordinator")}}),
    "ReserveBody": _object(
        {
            "timeout": {**SECONDS, "default": 300, "description": "Seconds until it expires."},
            "holder": {"type": "string", "description": "Who (default api@<address>)."},
        },
        required=[],
    ),
    "LockBody": _object(
        {
            "key": {"type": "string", "description": "The reservation's key; omit on free."},
            "lease": {**SECONDS, "description": "Seconds until the lock expires; omit: never."},
            "holder": {"type": "string"},
        },
        required=[],
    ),
    "ReleaseBody": _object(
        {
            "key": {"type": "string"},
            "force": {
                "type": "boolean",
                "default": False,
                "description": "Release whoever holds it (administrators); key not needed.",
            },
        },
        required=[],
        description="key, or force: true.",
    ),
    "RenewBody": _object(
        {
            "key": {"type": "string"},
            "lease": {**SECONDS, "description": "New length; omit: the hold's own length."},
        },
        required=["key"],
    ),
    "DisableBody": _object({"reason": {"type": "string", "default": ""}}, required=[]),
    "EmptyBody": _object({}, required=[]),
    # ------------------------------------------------------------ JSON-RPC
    "ClientInfo": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "description": "The Jenkins root URL."},
            "url": {"type": ["string", "null"], "description": "The task or build URL."},
        },
        "required": ["id"],
    },
    "ReserveParams": {
        "type": "object",
        "properties": {
            "resource": {"type": "string"},
            "timeout": {"type": "number", "description": "Seconds (0 < t <= 604800)."},
            "clientInfo": _ref("ClientInfo"),
        },
        "required": ["resource", "timeout", "clientInfo"],
    },
    "LockParams": {
        "type": "object",
        "properties": {
            "resource": {"type": "string"},
            "key": {"type": ["string", "null"]},
            "clientInfo": _ref("ClientInfo"),
        },
        "required": ["resource", "clientInfo"],
    },
    "ReleaseParams": {
        "type": "object",
        "properties": {
            "resource": {"type": "string"},
            "key": {"type": ["string", "null"]},
            "clientInfo": _ref("ClientInfo"),
        },
        "required": ["resource", "key"],
    },
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
        "description": "Without id it is a notification: done, not answered.",
    },
    "MonitorResult": _object(
        {
            "status": {"type": "string", "enum": ["OK", "NO"]},
            "code": {"type": "integer", "description": f"0 for OK, else: {CODE_TABLE}."},
            "message": {"type": "string"},
            "key": {"type": ["string", "null"]},
            "time": {
                "type": "integer",
                "description": "Deadline (reservation or lease) in ms since the epoch; "
                "the time of the answer when there is none.",
            },
            "timezone": {"type": "integer", "description": "The agent's UTC offset in seconds."},
            "isotime": {**TIME, "description": "`time` as ISO 8601 with offset, to the second."},
        },
        description="Exactly these seven fields: Jenkins' Jackson mapper fails on any other.",
    ),
    "JsonRpcResult": _object(
        {"jsonrpc": {"const": "2.0"}, "result": _ref("MonitorResult"), "id": _ref("JsonRpcId")}
    ),
    "JsonRpcError": _object(
        {
            "jsonrpc": {"const": "2.0"},
            "error": _object(
                {
                    "code": {"type": "integer", "enum": [-32700, -32600, -32601, -32602, -32603]},
                    "message": {"type": "string"},
                    "data": {"type": "string", "description": "What exactly is wrong."},
                },
                required=["code", "message"],
            ),
            "id": _ref("JsonRpcId"),
        },
        description="Only for malformed requests; refusals are results with status NO.",
    ),
    "JsonRpcResponse": {"oneOf": [_ref("JsonRpcResult"), _ref("JsonRpcError")]},
}


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
            "responses": {**_ok("The resource.", "Resource"), **_errors(404)},
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
        "enable", "Enable: let the resource take holds", "EmptyBody", "Resource", (404,)
    ),
    "/api/resources/{id}/disable": _action(
        "disable",
        "Disable: refuse new holds (an existing one stays)",
        "DisableBody",
        "Resource",
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
