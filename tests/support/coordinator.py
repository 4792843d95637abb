"""Coordinators for the real agent process: ``[[coordinator]]`` tables, Jenkins' metadata."""

from __future__ import annotations

from typing import Any

from tests.fakes.jenkins import JenkinsServer

NODE = "bench-7"
IDENTITY = "resource-agent://test-node"  # AgentProcess's [agent] identity


def coordinator(server: JenkinsServer, **options: Any) -> dict[str, Any]:
    """One ``[[coordinator]]`` table for ``server`` (fast retries for tests)."""
    return {"url": server.url, "retry_max": 0.5, "timeout": 1.0, **options}


def flat(res: dict[str, Any]) -> dict[str, str]:
    """A Jenkins resource's metadata as dotted names."""
    out: dict[str, str] = {}

    def walk(children: list[dict[str, Any]], prefix: str) -> None:
        for child in children:
            if "value" in child:
                out[prefix + child["name"]] = child["value"]
            else:
                walk(child["children"], prefix + child["name"] + ".")

    walk(res["children"], "")
    return out
