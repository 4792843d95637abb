"""What goes over the wire to Jenkins: documents built from resources, and parsed back.

How a resource becomes a metadata document (docs/jenkins.md), how a hold
becomes a ``clientInfo``, and what a node's metadata says about the
resources under the agent's tree. Pure functions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.coordinator.jenkins import Failure, JenkinsError
from agent.model import Holder, HoldKind, Resource


@dataclass(frozen=True, slots=True)
class RemoteResource:
    """One external-resource as Jenkins has it (from ``metadata-httpcli/get``)."""

    id: str
    description: str
    enabled: bool
    reserved: bool
    locked: bool
    values: Mapping[str, str] = field(default_factory=dict)  # dotted name -> string value
    held_by: str | None = None  # the hold's stashed-by (reservedBy/lockedBy), if any

    @property
    def hold(self) -> HoldKind | None:
        """The hold Jenkins believes in, if any (locked wins over reserved)."""
        if self.locked:
            return HoldKind.LOCKED
        if self.reserved:
            return HoldKind.RESERVED
        return None


def client_info(holder: Holder) -> str:
    """``clientInfo`` as Jenkins parses it; ``id`` exactly as received."""
    return json.dumps({"id": holder.id, "url": holder.url}, separators=(",", ":"))


def holder_name(holder: Holder) -> str:
    """``lockedBy``/``reservedBy``: who, for people reading Jenkins' node page."""
    return holder.url or holder.id or "resource-agent"


def _string(name: str, value: str) -> dict[str, Any]:
    return {"metadata-type": "metadata-string", "name": name, "value": value}


def metadata_children(values: Mapping[str, str]) -> list[dict[str, Any]]:
    """Dotted names become nested trees (``android.release`` -> android/release).

    Jobs select on dotted paths below the resource, so a dotted key must be a
    nested tree to be selectable. A name that is both a value and a prefix
    (``a`` and ``a.b``) keeps the tree; the plain value is dropped.
    """
    leaves: dict[str, str] = {}
    groups: dict[str, dict[str, str]] = {}
    for name in sorted(values):
        head, dot, rest = name.partition(".")
        if dot and rest:
            groups.setdefault(head, {})[rest] = values[name]
        else:
            leaves[name] = values[name]
    out = [_string(n, v) for n, v in leaves.items() if n not in groups]
    out += [
        {"metadata-type": "metadata-tree", "name": head, "children": metadata_children(sub)}
        for head, sub in groups.items()
    ]
    return sorted(out, key=lambda v: str(v["name"]))


def describe(res: Resource) -> str:
    """The description Jenkins shows for a resource."""
    return res.description or res.name


def resource_value(
    res: Resource, values: Mapping[str, str], enabled: bool | None = None
) -> dict[str, Any]:
    """One ``external-resource`` named by its id, with ``values`` as its metadata.

    ``enabled`` is sent only when given: leaving it out keeps Jenkins' state.
    """
    value: dict[str, Any] = {
        "metadata-type": "external-resource",
        "name": res.id,
        "id": res.id,
        "description": describe(res),
    }
    if enabled is not None:
        value["enabled"] = enabled
    value["children"] = metadata_children(values)
    return value


def tree_document(tree: str, resources: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``data`` of a metadata update: the agent's tree holding these resources."""
    return [{"metadata-type": "metadata-tree", "name": tree, "children": list(resources)}]


def _flatten(children: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if not isinstance(children, list):
        return out
    for child in children:
        if not isinstance(child, dict) or not isinstance(child.get("name"), str):
            continue
        name = prefix + child["name"]
        if child.get("metadata-type") in ("metadata-tree", "externalresource-treenode"):
            out.update(_flatten(child.get("children"), name + "."))
        elif "value" in child and child.get("metadata-type") != "external-resource":
            out[name] = str(child["value"])
    return out


def _resources_below(values: Any) -> Iterable[dict[str, Any]]:
    if not isinstance(values, list):
        return
    for value in values:
        if not isinstance(value, dict):
            continue
        if value.get("metadata-type") == "external-resource":
            yield value
        else:
            yield from _resources_below(value.get("children"))


def _stashed_by(stash: Any) -> str | None:
    who = stash.get("stashed-by") if isinstance(stash, dict) else None
    return who if isinstance(who, str) else None


def parse_tree(metadata: Any, tree: str) -> dict[str, RemoteResource]:
    """The external-resources under the tree named ``tree`` (case-insensitive), by id."""
    if not isinstance(metadata, list):
        raise JenkinsError(Failure.SERVER, "metadata-httpcli/get did not answer a JSON array")
    found: dict[str, RemoteResource] = {}
    for top in metadata:
        if not isinstance(top, dict) or str(top.get("name", "")).lower() != tree.lower():
            continue
        for value in _resources_below(top.get("children")):
            rid = value.get("id") or value.get("name")
            if not isinstance(rid, str):
                continue
            found[rid] = RemoteResource(
                id=rid,
                description=str(value.get("description") or ""),
                enabled=value.get("enabled") is not False,
                reserved=bool(value.get("reserved")),
                locked=bool(value.get("locked")),
                values=_flatten(value.get("children")),
                held_by=_stashed_by(value.get("locked") or value.get("reserved")),
            )
    return found
