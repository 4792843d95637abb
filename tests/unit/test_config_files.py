"""Files a ``[[coordinator]]`` names: a missing one is named by the full path looked in."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import CoordinatorSection
from agent.coordinator.jenkins import Failure, JenkinsError, client_for


def test_a_missing_token_file_names_the_path_it_looked_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    section = CoordinatorSection(url="http://j/", user="agent", token_file="jenkins.token")
    with pytest.raises(JenkinsError) as info:
        client_for(section, "node", tmp_path)
    assert info.value.kind is Failure.CONFIG
    assert str(tmp_path / "jenkins.token") in info.value.message
    assert "No such file" in info.value.message
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    with pytest.raises(JenkinsError) as info:
        client_for(section, "node", tmp_path)
    assert str(tmp_path / "creds" / "jenkins.token") in info.value.message


def test_a_relative_ca_file_is_beside_the_config(tmp_path: Path) -> None:
    section = CoordinatorSection(url="https://j/", ca_file="jenkins-ca.pem")
    with pytest.raises(JenkinsError) as info:
        client_for(section, "node", tmp_path)
    assert f"cannot load ca_file {tmp_path / 'jenkins-ca.pem'}: " in info.value.message
