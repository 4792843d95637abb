"""The metrics that follow from committed events, and those read when Prometheus scrapes.

``MetricsSink`` hears every committed event: holds taken and ended (with how
long they lasted), provisionings and teardowns (with how long they took, from
the events' own timing: the lock that starts a provisioning, the release that
starts a teardown), the recovery ladder's rungs. At scrape time it reads what
is: resources by state and kind, each resource's state and hold, each
coordinator's sync.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from agent.coordinator.status import HEALTHY, SyncState, SyncStatus
from agent.events import EventBus
from agent.lifecycle import Service
from agent.meters import PREFIX, Meters
from agent.model import (
    HOLD_ENDING,
    Event,
    EventType,
    FaultKind,
    Kind,
    Phase,
    Resource,
    ResourceState,
)


class MetricsSink(Service):
    """Counts what the event bus tells, and reports the fleet's state when scraped."""

    def __init__(
        self,
        meters: Meters,
        bus: EventBus,
        snapshot: Callable[[], Iterable[Resource]],
        coordinators: Callable[[], list[SyncStatus]],
        *,
        node: str,
        version: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._meters = meters
        self._bus = bus
        self._snapshot = snapshot
        self._coordinators = coordinators
        self._node = node
        self._version = version
        self._clock = clock
        self._phase_began: dict[str, tuple[Phase, float]] = {}  # by resource id
        self._unsubscribe: Callable[[], None] | None = None

    async def start(self) -> None:
        """Follow the bus and report at scrape time."""
        self._unsubscribe = self._bus.subscribe(self.on_event)
        self._meters.add(_Collector(self))

    async def stop(self) -> None:
        """Stop following the bus."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # ---------------------------------------------------------------- events

    def on_event(self, event: Event) -> None:
        """Count one committed event."""
        m, res, hold = self._meters, event.resource, event.hold
        now = self._clock()
        if event.type in (EventType.RESERVED, EventType.LOCKED) and hold is not None:
            m.series(m.holds, hold.kind.value).inc()
        elif event.type in HOLD_ENDING and hold is not None and event.ended is not None:
            m.series(m.hold_ends, hold.kind.value, event.ended.value).inc()
            m.series(m.hold_seconds, hold.kind.value).observe(max(0.0, now - hold.since))
        if event.type is EventType.PROVISIONED:
            self._ended(res.id, Phase.PROVISIONING, "ok" if res.failures == 0 else "failed", now)
        elif event.type is EventType.CLEANED:
            failed = res.fault is not None and res.fault.kind is FaultKind.TEARDOWN_FAILED
            self._ended(res.id, Phase.CLEANING, "failed" if failed else "ok", now)
        elif event.type is EventType.RECOVERY and event.rung is not None:
            m.recoveries.labels(event.rung.rung.value, event.rung.outcome.value).inc()
        elif event.type is EventType.REMOVED:
            self._phase_began.pop(res.id, None)
        if res.phase is not None and self._phase_began.get(res.id, (None,))[0] is not res.phase:
            self._phase_began[res.id] = (res.phase, now)

    def _ended(self, rid: str, phase: Phase, outcome: str, now: float) -> None:
        self._meters.sessions.labels(phase.value, outcome).inc()
        began = self._phase_began.pop(rid, None)
        if began is not None and began[0] is phase:
            self._meters.session_seconds.labels(phase.value).observe(max(0.0, now - began[1]))

    # ---------------------------------------------------------------- scrape

    def collect(self) -> Iterator[Metric]:
        """The state of things now: resources, holds, coordinators, the agent."""
        now = self._clock()
        resources = list(self._snapshot())
        info = GaugeMetricFamily(
            PREFIX + "info",
            "The agent: its node and version (always 1).",
            labels=["node", "version"],
        )
        info.add_metric([self._node, self._version], 1)
        yield info
        counts = Counter((r.state, r.kind) for r in resources)
        by_state = GaugeMetricFamily(
            PREFIX + "resources", "Resources by state and kind.", labels=["state", "kind"]
        )
        for state in ResourceState:
            for kind in Kind:
                by_state.add_metric([state.value, kind.value], counts[(state, kind)])
        yield by_state
        yield from self._per_resource(resources, now)
        yield from self._syncs(now)

    def _per_resource(self, resources: list[Resource], now: float) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            PREFIX + "resource_state",
            "Each resource's state (1 for the state it is in; alerts join on it).",
            labels=["resource", "kind", "state"],
        )
        held = GaugeMetricFamily(
            PREFIX + "hold_age_seconds",
            "How long each current hold has lasted.",
            labels=["resource", "kind"],
        )
        battery = GaugeMetricFamily(
            PREFIX + "battery_percent", "Each phone's battery level, as adb last read it.",
            labels=["resource"],
        )  # fmt: skip
        for res in resources:
            state.add_metric([res.id, res.kind.value, res.state.value], 1)
            if res.hold is not None:
                held.add_metric([res.id, res.hold.kind.value], max(0.0, now - res.hold.since))
            level = res.metadata.get("battery", "")
            if level.isascii() and level.isdigit():
                battery.add_metric([res.id], int(level))
        yield state
        yield held
        yield battery

    def _syncs(self, now: float) -> Iterator[Metric]:
        labels = ["coordinator"]
        up = GaugeMetricFamily(
            PREFIX + "coordinator_in_sync",
            "1 when the coordinator has every change or is taking them without trouble.",
            labels=labels,
        )
        sync_state = GaugeMetricFamily(
            PREFIX + "coordinator_state", "Each coordinator's sync state (1 for the current one).",
            labels=[*labels, "state"],
        )  # fmt: skip
        lag = GaugeMetricFamily(
            PREFIX + "coordinator_sync_lag_seconds",
            "How long the oldest change the coordinator lacks has waited (0: it has them all).",
            labels=labels,
        )
        pending = GaugeMetricFamily(
            PREFIX + "coordinator_pending",
            "Resources with changes the coordinator has not taken yet.",
            labels=labels,
        )
        requests = CounterMetricFamily(
            PREFIX + "coordinator_requests",
            "Requests sent to the coordinator, by result (ok, or how they failed).",
            labels=[*labels, "result"],
        )
        for status in self._coordinators():
            url = [status.url]
            up.add_metric(url, 1 if status.state in HEALTHY else 0)
            for s in SyncState:
                sync_state.add_metric([*url, s.value], 1 if s is status.state else 0)
            since = status.pending_since
            lag.add_metric(url, 0.0 if since is None else max(0.0, now - since))
            pending.add_metric(url, status.pending)
            for result, count in sorted(status.results.items()):
                requests.add_metric([*url, result], count)
        yield from (up, sync_state, lag, pending, requests)


class _Collector:
    """The registry's view of the sink: ``collect`` at every scrape."""

    def __init__(self, sink: MetricsSink) -> None:
        self._sink = sink

    def collect(self) -> Iterator[Metric]:
        return self._sink.collect()

    def describe(self) -> list[Metric]:
        # Described as nothing: collected fresh at every scrape, never at registration.
        return []
