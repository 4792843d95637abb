"""docs/ for monitoring: every query in the Grafana dashboard and the alert rules names a
metric the agent exports, and the rules pass ``promtool check rules``."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from agent.coordinator.status import SyncState, SyncStatus
from agent.events import EventBus
from agent.meters import Meters
from agent.metrics.sink import MetricsSink
from agent.model import Hold, Holder, HoldKind, Kind, Resource

DOCS = Path(__file__).parents[2] / "docs"
DASHBOARD = DOCS / "grafana-dashboard.json"
RULES = DOCS / "prometheus-alerts.yml"
# Identifiers in PromQL that are not metrics: functions, keywords, label names.
NAME = re.compile(r"\b(resource_agent_[a-z_]+)\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}


async def exported() -> set[str]:
    """Every sample name /metrics can show, from the agent's own registry and sink."""
    meters = Meters()
    phone = Resource(
        "pixel", "Pixel", Kind.ANDROID, metadata={"battery": "80"},
        hold=Hold(HoldKind.LOCKED, "k", Holder("j", "b"), since=0.0),
    )  # fmt: skip
    status = SyncStatus("http://j/", "n", "t", SyncState.IN_SYNC, 0, None, None, None, 0, 1,
                        {"ok": 1})  # fmt: skip
    async with MetricsSink(meters, EventBus(), lambda: [phone], lambda: [status], node="n",
                           version="v"):  # fmt: skip
        text = meters.render().decode()
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + s for s in SUFFIXES.get(family.type, ()))
        names.update(s.name for s in family.samples)
    return names


def dashboard_queries() -> list[str]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in data["panels"] for t in p["targets"]]
    queries += [v["definition"] for v in data["templating"]["list"] if "definition" in v]
    return queries


def rule_queries() -> list[str]:
    return re.findall(r"^\s+expr: (.+)$", RULES.read_text(), re.MULTILINE)


async def test_every_dashboard_query_names_an_exported_metric() -> None:
    names = await exported()
    queries = dashboard_queries()
    assert len(queries) >= 20
    used = set()
    for query in queries:
        found = NAME.findall(query)
        assert found or 'up{job="resource-agent"' in query, query
        for name in found:
            assert name in names, f"{name} (in {query!r}) is not exported"
            used.add(name)
    # And the dashboard shows every family the agent exports (none forgotten).
    families = {n for n in names if not n.endswith(("_bucket", "_sum", "_count", "_total"))}
    missing = {f for f in families if not any(u.startswith(f) for u in used)}
    assert missing == set()


async def test_every_alert_names_an_exported_metric() -> None:
    names = await exported()
    queries = rule_queries()
    assert len(queries) == 4
    for query in queries:
        for name in NAME.findall(query):
            assert name in names, f"{name} (in {query!r}) is not exported"


def test_promtool_accepts_the_rules() -> None:
    proc = subprocess.run(
        ["promtool", "check", "rules", str(RULES)],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 4 rules found" in proc.stdout
