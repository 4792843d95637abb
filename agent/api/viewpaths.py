"""The OpenAPI paths of what people and monitoring look at: the page, the event stream, metrics."""

from __future__ import annotations

from typing import Any

from agent.api.page import ASSETS
from agent.api.paths import ref


def _text(media: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"type": "string"}}}}


VIEW_PATHS: dict[str, Any] = {
    "/": {
        "get": {
            "summary": "The status page (HTML), for browsers",
            "operationId": "statusPage",
            "tags": ["view"],
            "responses": {
                "200": _text("text/html", "The page; it follows GET /api/events."),
                "406": {
                    "description": "The client accepts no HTML (code 22).",
                    "content": {"application/json": {"schema": ref("Error")}},
                },
            },
        }
    },
    "/ui/{file}": {
        "get": {
            "summary": "The status page's script and style sheet",
            "operationId": "statusPageFile",
            "tags": ["view"],
            "parameters": [
                {
                    "name": "file",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "enum": ASSETS},
                }
            ],
            "responses": {
                "200": {
                    "description": "The file.",
                    "content": {
                        "text/javascript": {"schema": {"type": "string"}},
                        "text/css": {"schema": {"type": "string"}},
                    },
                },
                "404": {
                    "description": "No such file (code 22).",
                    "content": {"application/json": {"schema": ref("Error")}},
                },
            },
        }
    },
    "/api/events": {
        "get": {
            "summary": "Every change as a server-sent event (text/event-stream), resumable",
            "operationId": "events",
            "tags": ["view"],
            "description": "Events: `snapshot` (data: Snapshot) first when the client cannot "
            "resume, `resource` (data: Change) for each committed change, `coordinators` "
            "(data: CoordinatorsChanged) when a coordinator's sync changes. Each has an id; "
            "send it back as the Last-Event-ID header (or ?last_event_id=) to get only what "
            "was missed. A comment line every 15 s keeps quiet streams open.",
            "parameters": [
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "description": "The id of the last event received.",
                    "schema": {"type": "string"},
                },
                {
                    "name": "last_event_id",
                    "in": "query",
                    "required": False,
                    "description": "The same, for clients that cannot set headers.",
                    "schema": {"type": "string"},
                },
            ],
            "responses": {"200": _text("text/event-stream", "The stream, until the agent stops.")},
        }
    },
    "/metrics": {
        "get": {
            "summary": "Metrics in the Prometheus text format",
            "operationId": "metrics",
            "tags": ["view"],
            "responses": {"200": _text("text/plain", "Every metric (docs/monitoring.md).")},
        }
    },
}
