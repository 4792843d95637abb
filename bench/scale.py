"""Scale: many devices, many resources, start-up, and an idle agent -- each beside a reference.

- storm: 200 phones behind 20 umockdev hubs are plugged back to back; measured
  are the time until the agent lists all 200 and until the strict test
  Jenkins has all 200 registered, and the requests Jenkins received.
- listing: ``GET /api/resources`` with 1,000 static resources, 300 times one
  after the other; beside it, a bare aiohttp server answering the same bytes.
- start-up: from starting the process to systemd's ``READY=1`` with 1,000
  resources in the state; beside it, the same agent with none.
- idle: RSS and CPU over 10 s of an agent with 50 resources and nothing to do
  (nothing polls); beside it, the bare aiohttp server.

``umockdev-wrapper .venv/bin/python -m bench scale``
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._procstat import cpu_seconds, rss_mib
from tests.agentproc import AgentProcess, http_request
from tests.fakes.jenkins import FakeJenkins, JenkinsServer
from tests.fakes.umockdev import Testbed, hub, phone, umockdev_active
from tests.support.net import free_port
from tests.support.waiting import wait_for

NODE = "scale-node"
PHONES, PER_HUB = 200, 10
LISTED = 1000
REQUESTS = 300
IDLE = 10.0


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def storm(tmp: Path) -> None:
    """200 phones plugged back to back: listed, registered, and what it cost Jenkins."""
    with JenkinsServer(FakeJenkins([NODE])) as server, Testbed() as testbed:
        root = testbed.controller()
        agent = AgentProcess(
            tmp / "storm", udev=True, env=testbed.env, log_level="warning",
            config={"coordinator": [{"url": server.url, "node": NODE}]},
        ).start()  # fmt: skip
        try:
            hubs = [testbed.plug(root, port, hub()) for port in range(1, PHONES // PER_HUB + 1)]
            wait_for(testbed.drained, timeout=30)
            time.sleep(0.5)  # start-up reconciliation is not the storm's
            server.jenkins.clear_requests()
            began = time.monotonic()
            for i in range(PHONES):
                testbed.plug(hubs[i // PER_HUB], i % PER_HUB + 1, phone(f"SCALE{i:04d}"))
            wait_for(lambda: len(agent.get("/api/resources")["resources"]) >= PHONES,
                     timeout=60, interval=0.005, what="all listed")  # fmt: skip
            listed = time.monotonic() - began
            wait_for(lambda: len(server.jenkins.resources(NODE)) >= PHONES,
                     timeout=60, interval=0.005, what="all registered")  # fmt: skip
            registered = time.monotonic() - began
            requests = len(server.jenkins.recorded())
        finally:
            agent.stop()
    print(f"storm of {PHONES} phones behind {PHONES // PER_HUB} hubs: all listed after "
          f"{listed * 1000:.0f} ms, all registered at Jenkins after {registered * 1000:.0f} ms, "
          f"{requests} requests to Jenkins")  # fmt: skip


def _latencies(port: int, path: str) -> list[float]:
    url = f"http://127.0.0.1:{port}"
    out = []
    for _ in range(REQUESTS):
        began = time.perf_counter()
        resp = http_request(url, "GET", path)
        out.append(time.perf_counter() - began)
        assert resp.status == 200
    return out


def _bare(port: int, body: Path) -> subprocess.Popen[bytes]:
    """A bare aiohttp server answering ``body`` to GET /api/resources (bench/ceiling.py's kind)."""
    code = (
        "import sys\nfrom aiohttp import web\n"
        "body = open(sys.argv[2], 'rb').read()\n"
        "async def h(r): return web.Response(body=body, content_type='application/json')\n"
        "app = web.Application(); app.router.add_get('/api/resources', h)\n"
        "web.run_app(app, host='127.0.0.1', port=int(sys.argv[1]), print=None, access_log=None)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(port), str(body)])
    wait_for(lambda: _open(port), timeout=10, what="the bare server")
    return proc


def _open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def listing_and_idle(tmp: Path) -> None:
    """GET /api/resources at 1,000 resources, and an idle agent with 50, beside bare aiohttp."""
    resources = [f"res-{i:04d}" for i in range(LISTED)]
    with AgentProcess(tmp / "list", resources=resources, log_level="warning") as agent:
        agent_ms = [x * 1000 for x in _latencies(agent.port, "/api/resources")]
        body = tmp / "resources.json"
        body.write_bytes(agent.request("GET", "/api/resources").body)
    port = free_port()
    bare = _bare(port, body)
    try:
        bare_ms = [x * 1000 for x in _latencies(port, "/api/resources")]
        bare_idle = _idle(bare.pid)
    finally:
        bare.terminate()
        bare.wait(10)
    print(f"GET /api/resources, {LISTED} resources ({body.stat().st_size // 1024} KiB), "
          f"{REQUESTS} requests: agent p50 {statistics.median(agent_ms):.1f} ms "
          f"p99 {_p(agent_ms, 0.99):.1f} ms; bare aiohttp, same bytes: p50 "
          f"{statistics.median(bare_ms):.1f} ms p99 {_p(bare_ms, 0.99):.1f} ms")  # fmt: skip
    with AgentProcess(tmp / "idle", resources=resources[:50], log_level="warning") as agent:
        cpu, rss = _idle(agent.pid)
    print(
        f"idle {IDLE:g} s, 50 resources: agent CPU {cpu * 1000:.0f} ms, RSS {rss:.0f} MiB; "
        f"bare aiohttp CPU {bare_idle[0] * 1000:.0f} ms, RSS {bare_idle[1]:.0f} MiB"
    )


def _idle(pid: int) -> tuple[float, float]:
    time.sleep(1)
    before = cpu_seconds(pid)
    time.sleep(IDLE)
    return cpu_seconds(pid) - before, rss_mib(pid)


def _ready_after(agent: AgentProcess) -> float:
    """Seconds from spawning the agent to its READY=1 on a notify socket of ours."""
    path = agent.directory / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(30)
        agent.env["NOTIFY_SOCKET"] = str(path)
        began = time.monotonic()
        agent.start(wait=False)
        while b"READY=1" not in sock.recv(4096):
            pass
        took = time.monotonic() - began
    agent.stop()
    path.unlink()
    return took


def startup(tmp: Path) -> None:
    """Start to READY with 1,000 resources in the state, beside none."""
    resources = [f"res-{i:04d}" for i in range(LISTED)]
    full = AgentProcess(tmp / "ready-1000", resources=resources, log_level="warning")
    full.start()
    full.stop()  # the state now holds 1,000 resources: the next start restores them
    empty = AgentProcess(tmp / "ready-0", log_level="warning")
    thousand = [_ready_after(full) for _ in range(3)]
    none = [_ready_after(empty) for _ in range(3)]
    print(f"start to READY=1: {LISTED} resources {statistics.median(thousand) * 1000:.0f} ms, "
          f"none {statistics.median(none) * 1000:.0f} ms (medians of 3)")  # fmt: skip


def main() -> None:
    """All four, each with its reference."""
    if not umockdev_active():
        print("scale: skipped (run under umockdev-wrapper)")
        return
    os.environ.setdefault("TMPDIR", "/dev/shm")
    with tempfile.TemporaryDirectory() as work:
        tmp = Path(work)
        storm(tmp)
        listing_and_idle(tmp)
        startup(tmp)
