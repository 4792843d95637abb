"""The agent beside a peer: labgrid's coordinator, places acquired and released, one run.

labgrid (``pip install labgrid``, in the benchmark's own venv ``.venv-labgrid``,
which ``make bench`` makes; never in the agent's) is the closest open-source
peer. Its coordinator keeps places in memory (it writes them to YAML files
now and then; a lock does not survive a crash). One labgrid cycle is
AcquirePlace + ReleasePlace on a place of the client's own (with no resources
to match: labgrid's fastest case), each client on its own gRPC session. One
agent cycle is Jenkins' Reserve + Lock + Release, each committed to disk
before it is answered. Both at 1 and at 16 concurrent clients, in one run,
in turns (labgrid, agent, labgrid, agent: BENCH_TURNS), medians compared.
``python -m bench peer_labgrid`` (BENCH_SECONDS per run).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench._jsonrpc_load import run_load
from tests.agentproc import AgentProcess
from tests.support.net import free_port
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[1]
LABGRID = ROOT / ".venv-labgrid" / "bin"
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
TURNS = int(os.environ.get("BENCH_TURNS", "2"))
CONCURRENCY = (1, 16)


def _open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _labgrid_cycles(clients: int, tmp: Path) -> float:
    port = free_port()
    log = (tmp / f"coordinator-{clients}.log").open("wb")
    coordinator = subprocess.Popen(
        [str(LABGRID / "labgrid-coordinator"), "-l", f"127.0.0.1:{port}"],
        cwd=tmp,  # it writes places.yaml and resources.yaml where it runs
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: _open(port), timeout=20, what="labgrid's coordinator")
        out = subprocess.run(
            [str(LABGRID / "python"), str(ROOT / "bench" / "_labgrid_client.py"),
             f"127.0.0.1:{port}", str(clients), str(SECONDS)],
            capture_output=True, text=True, check=True, timeout=SECONDS + 60,
        )  # fmt: skip
    finally:
        coordinator.terminate()
        coordinator.wait(10)
        log.close()
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    return float(figures["cycles"]) / float(figures["seconds"])


def _agent_cycles(clients: int, tmp: Path) -> float:
    resources = [f"bench-{i}" for i in range(clients)]
    directory = Path(tempfile.mkdtemp(prefix=f"agent-{clients}-", dir=tmp))
    with AgentProcess(directory, resources=resources, log_level="warning") as agent:
        load = asyncio.run(run_load(agent.host, agent.port, clients, SECONDS))
    return load.rate / 3  # Reserve, Lock and Release make one cycle


def main() -> None:
    """Print cycles per second of both, and the ratio, at each concurrency."""
    if not (LABGRID / "labgrid-coordinator").exists():
        print(f"peer_labgrid: no labgrid in {LABGRID.parent} (make bench installs it)")
        return
    print(f"{'clients':>7} {'agent cycles/s':>15} {'labgrid cycles/s':>17} {'agent/labgrid':>14}")
    with tempfile.TemporaryDirectory() as work:
        tmp = Path(work)
        for clients in CONCURRENCY:
            labgrids, agents = [], []
            for _ in range(TURNS):
                labgrids.append(_labgrid_cycles(clients, tmp))
                agents.append(_agent_cycles(clients, tmp))
            labgrid, agent = statistics.median(labgrids), statistics.median(agents)
            print(f"{clients:7d} {agent:15.0f} {labgrid:17.0f} {agent / labgrid:14.1f}")
