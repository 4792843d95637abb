"""``GET /metrics`` parsed with prometheus-client's own parser: samples by name and labels."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.agentproc import AgentProcess


class Scrape:
    """One scrape of an agent's metrics."""

    def __init__(self, agent: AgentProcess) -> None:
        resp = agent.request("GET", "/metrics")
        assert resp.status == 200, resp.body[:300]
        self.content_type = resp.headers["content-type"]
        self.families = {f.name: f for f in text_string_to_metric_families(resp.body.decode())}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels`` (0: none)."""
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def names(self) -> set[str]:
        """Every sample name."""
        return {s.name for s in self.samples}
