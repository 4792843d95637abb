"""``make run`` keeps a developer's state in the checkout, never in the production directory."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.agentproc import AgentProcess

ROOT = Path(__file__).resolve().parents[2]


def dry_run(*args: str) -> str:
    proc = subprocess.run(
        ["make", "-n", "-s", "--no-print-directory", "-C", str(ROOT), "run", *args],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return proc.stdout.strip().splitlines()[-1]


def test_make_run_without_a_config_keeps_state_in_the_checkout() -> None:
    assert f"serve --state-dir {ROOT}/.state" in dry_run()
    assert "--state-dir" not in dry_run("ARGS=--config /etc/resource-agent/agent.toml")
    assert ".state/" in (ROOT / ".gitignore").read_text().splitlines()


def test_serve_state_dir_overrides_the_config(tmp_path: Path) -> None:
    elsewhere = tmp_path / "dev-state"
    with AgentProcess(tmp_path / "run", resources=["a"], args=["--state-dir", str(elsewhere)]) as a:
        assert a.get("/api/health")["resources"] == 1
        assert a.wait_log(f"(state in {elsewhere})")
    assert (elsewhere / "state.db").exists() and not a.state_dir.exists()
