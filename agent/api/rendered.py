"""Each resource's JSON as the REST API shows it, made once per state of the resource.

``GET /api/resources`` at 1,000 resources spent 10 ms building and dumping a
model per resource, every time. A resource is an immutable value the registry
replaces when anything about it changes, so its JSON is kept beside the very
object it was made from and made again only for a new one, a new time zone
(the hold's times are local) or a step of the wall clock (the hold's times are
kept on the agent's steady clock and shown on the wall clock's: agent/clock.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from aiohttp import web

from agent.api.schemas import ResourceOut, Wall
from agent.model import Resource

_LIST_HEAD, _LIST_TAIL = b'{"resources":[', b"]}"


class Rendered:
    """Resources' JSON by id, each beside the resource it was made from."""

    def __init__(self) -> None:
        self._kept: dict[str, tuple[Resource, tuple[str, str, int], bytes]] = {}

    def resource(self, res: Resource, wall: Wall) -> bytes:
        """``ResourceOut.of(res, wall)`` as JSON."""
        # Times are shown to the second: a wall clock that moved less than that
        # against the steady one (NTP's slewing) shows the same text.
        seen = (*time.tzname, round(wall(0.0)))
        kept = self._kept.get(res.id)
        if kept is not None and kept[0] is res and kept[1] == seen:
            return kept[2]
        text = ResourceOut.of(res, wall).model_dump_json().encode()
        self._kept[res.id] = (res, seen, text)
        return text

    def resources(self, resources: Iterable[Resource], wall: Wall) -> bytes:
        """A ``ResourceList`` of ``resources`` as JSON (as its model_dump_json writes it).

        Forgets the resources not in it.
        """
        listed = list(resources)
        if len(self._kept) > len(listed):  # some were removed: keep only the listed
            ids = {res.id for res in listed}
            self._kept = {rid: kept for rid, kept in self._kept.items() if rid in ids}
        return _LIST_HEAD + b",".join([self.resource(res, wall) for res in listed]) + _LIST_TAIL


RENDERED = web.AppKey("rendered", Rendered)
