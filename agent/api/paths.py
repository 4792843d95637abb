"""The paths of the OpenAPI document: what each route takes and answers, written by hand.

The schemas they refer to are generated from the models (openapi.py).
"""

from __future__ import annotations

from typing import Any

from agent.api.jsonrpc import METHODS

JSONRPC_METHODS = tuple(METHODS)

# What each REST error status means; every /api/ error has the Error body.
ERROR_STATUSES = {
    400: "The body is not JSON, or not a JSON object.",
    401: "A bearer token is needed, or the one sent is unknown (code 24); "
    "see the bearerToken scheme.",
    403: "Wrong key: the resource is held with another key (code 6); or the token "
    "lacks the admin role this change needs (code 25).",
    404: "No resource with this id (code 1), or no such route or session (code 22).",
    409: "The resource's state says no: disabled, absent, unhealthy, held, not held, "
    "expired key, no lease, being cleaned, quarantined, provisioning failed, present "
    "(codes 2-5, 7, 8, 10-14).",
    413: "The body is larger than 64 KiB (code 21).",
    422: "A field is missing, unknown, of the wrong type or out of range; "
    "the message names it (code 9).",
    503: "The state directory would not take the change -- full, read-only -- so nothing "
    "was changed; the message names the directory and why (code 15). Try again later.",
}


def ref(name: str) -> dict[str, str]:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def _json_content(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"application/json": media}


def _errors(*statuses: int) -> dict[str, Any]:
    return {
        str(s): {"description": ERROR_STATUSES[s], "content": _json_content(ref("Error"))}
        for s in statuses
    }


def _ok(description: str, schema: str) -> dict[str, Any]:
    return {"200": {"description": description, "content": _json_content(ref(schema))}}


ID_PARAMETER = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The resource id (URL-encoded).",
    "schema": {"type": "string"},
}

BODY_ERRORS = (400, 413, 422)

# A change needs a bearer token, or none: from loopback while no tokens are
# configured, and from loopback with the holder's own key (docs/security.md).
CHANGE_SECURITY: list[dict[str, list[str]]] = [{"bearerToken": []}, {}]
ADMIN_ONLY = "Needs a token with the admin role once tokens are configured (from loopback too)."


def _action(
    action: str,
    summary: str,
    body: str,
    answer: str,
    refusals: tuple[int, ...],
    *,
    required: bool = False,
    admin: bool = False,
) -> dict[str, Any]:
    statuses = sorted({*refusals, 401, 503, *((403,) if admin else ()), *BODY_ERRORS})
    return {
        "post": {
            "summary": summary,
            "operationId": action,
            "tags": ["resources"],
            "parameters": [ID_PARAMETER],
            "security": CHANGE_SECURITY,
            **({"description": ADMIN_ONLY} if admin else {}),
            "requestBody": {"required": required, "content": _json_content(ref(body))},
            "responses": {**_ok("Done, and on disk.", answer), **_errors(*statuses)},
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
            + ". Any Content-Type is accepted. A batch (array) is answered with an array. "
            "Answered only from the sources in [server] jsonrpc_allow (Jenkins sends no "
            "credentials).",
            "security": [{}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json-rpc": {
                        "schema": {
                            "oneOf": [
                                ref("JsonRpcRequest"),
                                {"type": "array", "minItems": 1, "items": ref("JsonRpcRequest")},
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
                                    ref("JsonRpcResponse"),
                                    {"type": "array", "items": ref("JsonRpcResponse")},
                                ]
                            },
                            "example": RESULT_EXAMPLE,
                        }
                    },
                },
                "204": {"description": "Only notifications were sent: nothing to answer."},
                "403": {
                    "description": "The source address is not in [server] jsonrpc_allow; "
                    "no JSON-RPC body.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
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
        "Release the hold held with key, or any hold with force (force: admin role)",
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
        "enable",
        "Enable: let the resource take holds",
        "EmptyBody",
        "ResourceOut",
        (404,),
        admin=True,
    ),
    "/api/resources/{id}/recover": _action(
        "recover",
        "Climb a stuck phone's recovery ladder now; answers when it has ended",
        "RecoverBody",
        "RecoverAnswer",
        (404,),
        admin=True,
    ),
    "/api/resources/{id}/disable": _action(
        "disable",
        "Disable: refuse new holds (an existing one stays)",
        "DisableBody",
        "ResourceOut",
        (404,),
        admin=True,
    ),
    "/api/resources/{id}/forget": _action(
        "forget",
        "Forget an absent resource nobody holds (administrators); answers it as it was",
        "EmptyBody",
        "ResourceOut",
        (404, 409),
    ),
}

SESSION_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The session id (from a lock's answer or the session list).",
    "schema": {"type": "string"},
}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}  # fmt: skip


PATHS |= {
    "/api/acquire": {
        "post": {
            "summary": "Lock any free resource that matches, waiting in line for one",
            "operationId": "acquire",
            "tags": ["resources"],
            "description": "First come, first served among those who wait. The lock's session "
            "provisions on; follow its log (the answer's session) to know when it is ready.",
            "security": CHANGE_SECURITY,
            # Every field has a default: no body is the same as {}.
            "requestBody": {"required": False, "content": _json_content(ref("AcquireBody"))},
            "responses": {
                **_ok("Locked, and on disk.", "HoldAnswer"),
                **_errors(401, 404, 409, *BODY_ERRORS),
            },
        }
    },
    "/api/sessions": {
        "get": {
            "summary": "Sessions, newest first",
            "operationId": "listSessions",
            "tags": ["sessions"],
            "parameters": [
                _query("resource", "Only this resource's.", {"type": "string"}),
                _query(
                    "holder",
                    "Only this holder's: its url, or its id and url joined (a BUILD_URL).",
                    {"type": "string"},
                ),
                _query(
                    "limit",
                    "How many.",
                    {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                ),
            ],
            "responses": {**_ok("The sessions.", "SessionList"), **_errors(404, 422)},
        }
    },
    "/api/sessions/{id}": {
        "get": {
            "summary": "One session",
            "operationId": "showSession",
            "tags": ["sessions"],
            "parameters": [SESSION_ID],
            "responses": {**_ok("The session.", "SessionOut"), **_errors(404)},
        }
    },
    "/api/sessions/{id}/log": {
        "get": {
            "summary": "A session's log as text; follow=1 streams it until the phase ends",
            "operationId": "sessionLog",
            "tags": ["sessions"],
            "parameters": [
                SESSION_ID,
                _query(
                    "follow",
                    "1: stream new lines while the phase lasts.",
                    {"type": "string", "enum": ["0", "1", "true", "false"]},
                ),
            ],
            "responses": {
                "200": {
                    "description": "One line per step start, output line and step end.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                **_errors(404),
            },
        }
    },
}
