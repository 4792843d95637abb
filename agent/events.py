"""Fan-out of registry events to the sinks (coordinator sync, streams, sessions).

Subscribers are called synchronously on the event loop and must only queue
work: a slow sink must never delay a lock answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from agent.model import Event

log = logging.getLogger(__name__)

Subscriber = Callable[[Event], None]


class EventBus:
    """Delivers each committed event to every subscriber, in commit order."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; answer a function that removes it again."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def publish(self, events: Iterable[Event]) -> None:
        """Hand every event to every subscriber; one failing sink harms no other."""
        for event in events:
            for subscriber in list(self._subscribers):
                try:
                    subscriber(event)
                except Exception:
                    log.exception("event subscriber %r failed on %s", subscriber, event.type)
