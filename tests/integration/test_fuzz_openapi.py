"""Schemathesis against /api/openapi.json on a running agent: every operation, every phase.

Schemathesis (4.x) reads the agent's own OpenAPI document and sends what it
generates from it -- the document's examples, the edges of every schema
(coverage), random valid and invalid requests (fuzzing), chains of calls
(stateful) -- to a real agent process, with all its checks: no 5xx, documented
status codes, content types and headers, answers that match their schemas,
invalid requests refused and valid ones accepted. tests/support/
schemathesis_hooks.py adds one of ours: a refused request changes nothing.
Skipped: ``GET /api/events`` (an endless event stream: tests/integration/
test_event_stream.py). ``FAULTS_SCALE`` multiplies the examples per operation.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.agentproc import AgentProcess
from tests.support.scale import scaled

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = scaled(30)  # per operation and phase
SEED = "11"


@pytest.mark.timeout(scaled(120))  # make faults runs ten times the examples
def test_schemathesis_finds_nothing(
    agent_factory: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    agent = agent_factory(resources=["r1", "r2", "r3"])
    env = {
        **os.environ,
        "FUZZ_AGENT_URL": agent.url,
        "SCHEMATHESIS_HOOKS": "tests.support.schemathesis_hooks",
        "PYTHONPATH": str(ROOT),
    }
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--no-color",
        "--config-file", str(ROOT / "tests/support/schemathesis.toml"),
        "run", f"{agent.url}/api/openapi.json",
        "--max-examples", str(EXAMPLES), "--seed", SEED,
        "--exclude-path", "/api/events",
        "--request-timeout", "10", "--warnings", "off",
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600, check=False
    )
    output = done.stdout + done.stderr
    found = re.search(r"(\d+) generated, (\d+) passed", output)
    assert done.returncode == 0 and found, output[-6000:]  # its cache stays in tmp_path
    print(f"schemathesis: {found.group(1)} cases, all passed")
    assert int(found.group(1)) >= 10 * EXAMPLES
    assert agent.running() and agent.get("/api/health")["status"] == "ok"
    assert "Traceback" not in agent.log(), agent.log_tail()
