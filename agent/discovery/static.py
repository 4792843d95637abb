"""The static source: resources declared by hand in the config (``[[resource]]``).

A label printer or a board on a serial cable is no USB device the agent can
see come and go: the administrator declares it, and it is always present.
One deleted from the config is retired at the next start: removed once
nobody holds it, and reported gone to the coordinators.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.discovery import FactSink
from agent.lifecycle import Service
from agent.model import (
    ID_PATTERN,
    Description,
    Kind,
    Resource,
    check_metadata_name,
    metadata_values,
)

log = logging.getLogger(__name__)


class StaticResource(BaseModel):
    """``[[resource]]``: a resource declared by hand (always present)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN)
    name: str | None = None
    description: str = ""
    metadata: dict[str, str] = Field(default_factory=dict)

    _strings = field_validator("metadata", mode="before")(metadata_values)

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


class StaticSink(FactSink, Protocol):
    """A fact sink that also hears of declared resources the config no longer has."""

    def retire(self, resource_id: str) -> None:
        """The resource is no longer declared."""


class StaticSource(Service):
    """Reports the declared resources as present when started, and retires the others."""

    def __init__(
        self,
        sink: StaticSink,
        resources: Iterable[StaticResource],
        known: Callable[[], Iterable[Resource]],
    ) -> None:
        # known(): every resource the agent has now (from its store), to find the undeclared.
        self._sink = sink
        self._resources = list(resources)
        self._known = known

    async def start(self) -> None:
        """Describe every declared resource; retire the static ones no longer declared."""
        declared = static_descriptions(self._resources)
        for desc in declared:
            self._sink.describe(desc)
        ids = {d.id for d in declared}
        for res in list(self._known()):
            if res.kind is Kind.STATIC and res.id not in ids:
                log.info("static resource %s is no longer in the config: retiring it", res.id)
                self._sink.retire(res.id)
