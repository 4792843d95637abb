"""A min-heap of (deadline, resource id) with lazy deletion, for the registry's timers.

Changing a resource's deadline only pushes the new one; entries that no longer
match the resource's current deadline are skipped when they reach the top. A
storm of N changes thus costs N log N, not N squared, and the heap is rebuilt
whenever stale entries outnumber live ones, so it stays O(resources).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator


class Deadlines:
    """When each resource next needs the registry's attention."""

    def __init__(
        self,
        current: Callable[[str], float | None],
        everything: Callable[[], Iterable[tuple[float, str]]],
        size: Callable[[], int],
    ) -> None:
        # current(id): that resource's deadline now (None: none, or no such resource);
        # everything(): every live (deadline, id); size(): how many resources there are.
        self._current = current
        self._everything = everything
        self._size = size
        self._heap: list[tuple[float, str]] = []

    def note(self, rid: str, old: float | None, new: float | None) -> None:
        """``rid``'s deadline moved from ``old`` to ``new`` (call after storing it)."""
        if new is None or old == new:
            return
        heapq.heappush(self._heap, (new, rid))
        if len(self._heap) > 2 * self._size() + 64:
            self._heap = list(self._everything())
            heapq.heapify(self._heap)

    def next(self) -> float | None:
        """The earliest live deadline, or None."""
        heap = self._heap
        while heap and self._current(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def due(self, now: float) -> Iterator[str]:
        """Pop and yield the id of every live deadline at or before ``now``."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, rid = heapq.heappop(heap)
            if self._current(rid) == deadline:
                yield rid
