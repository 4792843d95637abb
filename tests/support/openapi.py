"""Checking real answers against the agent's OpenAPI document."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from agent.api.openapi import DOCUMENT
from tests.agentproc import Response

DOC_URI = "urn:resource-agent:openapi"
REGISTRY: Registry[Any] = Registry().with_resource(
    DOC_URI, Resource.from_contents(DOCUMENT, default_specification=DRAFT202012)
)
# The keys of a path item that are operations.
METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


def pointer(*parts: str) -> str:
    """A JSON pointer's path from its unescaped parts."""
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def validator(*parts: str) -> Draft202012Validator:
    """A validator for the schema at ``parts`` within the document (refs resolved)."""
    return Draft202012Validator({"$ref": f"{DOC_URI}#/{pointer(*parts)}"}, registry=REGISTRY)


def check(path: str, method: str, resp: Response) -> Any:
    """The answer has a documented status and content type and fits the schema."""
    operation = DOCUMENT["paths"][path][method.lower()]
    documented = operation["responses"].get(str(resp.status))
    assert documented is not None, f"{method} {path}: HTTP {resp.status} is not documented"
    content = documented.get("content")
    if content is None:
        assert resp.body == b"", f"{method} {path}: {resp.status} documented without a body"
        return None
    content_type = resp.headers.get("content-type", "").split(";")[0]
    assert content_type in content, f"{method} {path}: {content_type} not in {list(content)}"
    schema = validator(
        "paths", path, method.lower(), "responses", str(resp.status), "content", content_type,
        "schema",
    )  # fmt: skip
    body = resp.json()
    errors = sorted(schema.iter_errors(body), key=lambda e: list(e.path))
    assert not errors, f"{method} {path} {resp.status}: {errors[0].message} in {body}"
    return body
