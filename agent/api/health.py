"""``GET /api/health``: alive, and honest about what is wrong.

Still HTTP 200 when something is wrong -- the agent serves -- but ``degraded``
with one line per problem: a state directory that does not take writes (full,
read-only), a coordinator that is failing (retrying or failing, with its last
error, an HTML page cut to its title), an adb server that does not answer
while ``[adb]`` is enabled, a quarantined resource.
``resource-agent status`` prints these lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from aiohttp import web

from agent.api.rest import answer
from agent.api.schemas import Health
from agent.api.wire import AUTHORITY, COORDINATORS
from agent.coordinator.status import WAITING, SyncStatus
from agent.model import FaultKind, Resource

routes = web.RouteTableDef()


class AdbStatus(Protocol):
    """What health asks of the adb source."""

    @property
    def connected(self) -> bool:
        """Whether the adb server answers now."""
        ...

    @property
    def server(self) -> str:
        """Its ``host:port``."""
        ...


ADB = web.AppKey("adb", AdbStatus)


def problems(
    coordinators: Sequence[SyncStatus],
    adb: AdbStatus | None,
    resources: Iterable[Resource],
    disk: str | None,
) -> list[str]:
    """One line per problem: the disk's first, then the coordinators'."""
    found = [] if disk is None else [f"{disk}: changes are refused (code 15) until it does"]
    for c in coordinators:
        if c.state in WAITING:
            why = f": {c.last_error.message}" if c.last_error is not None else ""
            found.append(f"coordinator {c.url} is {c.state.value}{why}")
    if adb is not None and not adb.connected:
        found.append(f"the adb server at {adb.server} does not answer ([adb] is enabled)")
    for res in resources:
        if res.fault is not None and res.fault.kind is FaultKind.QUARANTINED:
            found.append(f"resource {res.id} is quarantined: {res.fault.reason}")
    return found


@routes.get("/api/health")
async def health(request: web.Request) -> web.Response:
    """Liveness, a summary, and the problems (``degraded`` when there are any)."""
    authority = request.app[AUTHORITY]
    resources = authority.registry.resources()
    source = request.app.get(COORDINATORS)
    found = problems(
        source.status() if source else [],
        request.app.get(ADB),
        resources,
        authority.disk_problem,
    )
    return answer(
        Health(
            status="degraded" if found else "ok",
            resources=len(resources),
            held=sum(1 for r in resources if r.hold is not None),
            problems=found,
        )
    )
