"""Fan-out of registry events to the sinks (coordinator sync, streams, sessions).

Subscribers are called synchronously on the event loop and must only queue
work: a slow sink must never delay a lock answer. A subscriber hears one event
at a time; a group subscriber hears everything one commit published at once
(the audit trail writes a group commit's lines together).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from agent.model import Event

log = logging.getLogger(__name__)

Subscriber = Callable[[Event], None]
GroupSubscriber = Callable[[Sequence[Event]], None]


class EventBus:
    """Delivers each committed event to every subscriber, in commit order."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._group_subscribers: list[GroupSubscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; answer a function that removes it again."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def subscribe_groups(self, subscriber: GroupSubscriber) -> None:
        """Add a subscriber that hears each publication's events together, for good."""
        self._group_subscribers.append(subscriber)

    def publish(self, events: Sequence[Event]) -> None:
        """Hand every event to every subscriber; one failing sink harms no other."""
        for group_subscriber in self._group_subscribers:
            try:
                group_subscriber(events)
            except Exception:
                log.exception("event subscriber %r failed on %d events", group_subscriber,
                              len(events))  # fmt: skip
        for event in events:
            for subscriber in list(self._subscribers):
                try:
                    subscriber(event)
                except Exception:
                    log.exception("event subscriber %r failed on %s", subscriber, event.type)
