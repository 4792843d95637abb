"""The static source: resources declared by hand in the config (``[[resource]]``).

A label printer or a board on a serial cable is no USB device the agent can
see come and go: the administrator declares it, and it is always present.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.discovery import FactSink
from agent.lifecycle import Service
from agent.model import ID_PATTERN, Description, Kind, check_metadata_name


class StaticResource(BaseModel):
    """``[[resource]]``: a resource declared by hand (always present)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN)
    name: str | None = None
    description: str = ""
    metadata: dict[str, str] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _check_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            check_metadata_name(name)
        return value


def static_descriptions(resources: Iterable[StaticResource]) -> list[Description]:
    """The ``[[resource]]`` entries as source facts."""
    return [
        Description(
            id=r.id,
            name=r.name or r.id,
            kind=Kind.STATIC,
            description=r.description,
            metadata=dict(r.metadata),
        )
        for r in resources
    ]


class StaticSource(Service):
    """Reports the declared resources as present when started."""

    def __init__(self, sink: FactSink, resources: Iterable[StaticResource]) -> None:
        self._sink = sink
        self._resources = list(resources)

    async def start(self) -> None:
        """Describe every declared resource."""
        for desc in static_descriptions(self._resources):
            self._sink.describe(desc)
