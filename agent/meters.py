"""Every metric the agent exports, declared once (docs/grafana-dashboard.json queries them).

Names follow Prometheus' conventions: ``resource_agent_`` first, ``_total``
for counters, base units (seconds). Label values come from closed sets (the
vocabulary's enums, route patterns, HTTP statuses), never from ids a client
chooses -- except the resource id on the per-resource gauges, which the agent
itself bounds.
"""

from __future__ import annotations

from typing import TypeVar, cast

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

F = TypeVar("F", bound=MetricWrapperBase)

# The library's ``*_created`` series double every counter for nothing a dashboard uses.
disable_created_metrics()  # type: ignore[no-untyped-call]

PREFIX = "resource_agent_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Holds last from seconds (a Jenkins reservation) to days (a lock on a soak test).
HOLD_BUCKETS = (1, 5, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400, 7 * 86400)
# Provisioning and teardown: a reboot takes a minute, a full wipe many.
SESSION_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)
# A commit is one fsync: well under a millisecond on an SSD, tens on a slow disk.
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
HTTP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30, 120)


class Meters:
    """One agent's metrics: its registry and every family in it."""

    def __init__(self) -> None:
        self._series: dict[tuple[int, tuple[str, ...]], MetricWrapperBase] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.holds = Counter(
            PREFIX + "holds", "Holds taken, by kind (reserved, locked).", ["kind"], registry=r
        )
        self.refused = Counter(
            PREFIX + "holds_refused",
            "Reserve, lock and acquire commands refused, by action and reason (refusal code).",
            ["action", "reason"],
            registry=r,
        )
        self.hold_ends = Counter(
            PREFIX + "hold_ends",
            "Holds that ended, by kind and how (released, forced, reservation expired, "
            "lease expired, provisioning failed, build ended).",
            ["kind", "reason"],
            registry=r,
        )
        self.hold_seconds = Histogram(
            PREFIX + "hold_duration_seconds",
            "How long holds lasted, from reservation or lock to their end.",
            ["kind"],
            buckets=HOLD_BUCKETS,
            registry=r,
        )
        self.sessions = Counter(
            PREFIX + "sessions",
            "Provisionings and teardowns that ended, by phase and outcome (ok, failed).",
            ["phase", "outcome"],
            registry=r,
        )
        self.session_seconds = Histogram(
            PREFIX + "session_duration_seconds",
            "How long provisioning and teardown took (those this agent process saw begin).",
            ["phase"],
            buckets=SESSION_BUCKETS,
            registry=r,
        )
        self.recoveries = Counter(
            PREFIX + "recoveries",
            "Rungs of the recovery ladder tried, by rung (reconnect, soft replug, power cycle, "
            "quarantine) and outcome (recovered, failed, skipped).",
            ["rung", "outcome"],
            registry=r,
        )
        self.udev_events = Counter(
            PREFIX + "udev_events",
            "USB device events udev reported, by action (add, change, remove...).",
            ["action"],
            registry=r,
        )
        self.adb_events = Counter(
            PREFIX + "adb_events",
            "Device state changes the adb server reported, by the new state (gone: unlisted).",
            ["state"],
            registry=r,
        )
        self.commit_seconds = Histogram(
            PREFIX + "store_commit_seconds",
            "How long each group commit to the state database took (one fsync).",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.http_requests = Counter(
            PREFIX + "http_requests",
            "HTTP requests answered, by endpoint (route pattern), method and status.",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.handovers = Counter(
            PREFIX + "http_handovers",
            "Connections the express lane handed to aiohttp: a request other than Jenkins' "
            "plain POST / (REST, the status page, HTTP/1.0, a chunked body, a bad header).",
            registry=r,
        )
        self.http_seconds = Histogram(
            PREFIX + "http_request_duration_seconds",
            "How long HTTP requests took to answer, by endpoint (streams: until they ended).",
            ["endpoint"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.start_time = Gauge(
            PREFIX + "start_time_seconds", "When this agent process started.", registry=r
        )
        self.start_time.set_to_current_time()

    def series(self, family: F, *values: str) -> F:
        """``family.labels(*values)``, looked up once: a lookup takes a lock and builds a key,
        and a request counts into three series, a change into two more."""
        key = (id(family), values)  # the families live as long as this object
        found = self._series.get(key)
        if found is None:
            found = self._series[key] = family.labels(*values)
        return cast(F, found)

    def add(self, collector: Collector) -> None:
        """Register a collector that reads its values when Prometheus scrapes."""
        self.registry.register(collector)

    def render(self) -> bytes:
        """Everything, in the Prometheus text format."""
        return generate_latest(self.registry)
