"""Every long-lived part of the agent is a ``Service``: started and stopped as an async context.

``async with part:`` starts it and stops it again, whatever happens in between;
the daemon stacks its parts in a ``contextlib.AsyncExitStack``, which stops
them in reverse order and also stops the ones already started when a later
one fails to start.
"""

from __future__ import annotations

from typing import Self


class Service:
    """A part with a start and a stop; ``async with`` runs them."""

    async def start(self) -> None:
        """Start; return once the part's initial work (a coldplug, say) is done."""

    async def stop(self) -> None:
        """Stop and release what it holds; called even after a failed start."""

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()  # release what a half-finished start took
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
