"""The Jenkins test server is as strict as the plugins: a lenient fake would prove nothing."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.jenkins import (
    ENABLE_DISABLE,
    METADATA_UPDATE,
    READ,
    FakeJenkins,
    JenkinsServer,
    User,
)

NODE = "build-1"
TOKEN = "s3cret"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server() -> Iterator[JenkinsServer]:
    users = {
        "agent": User(TOKEN),
        "viewer": User("view", frozenset({READ, METADATA_UPDATE, ENABLE_DISABLE})),
    }
    with JenkinsServer(FakeJenkins([NODE], users)) as srv:
        yield srv


def call(
    server: JenkinsServer,
    path: str,
    params: dict[str, str],
    *,
    method: str = "POST",
    auth: tuple[str, str] | None = ("agent", TOKEN),
) -> tuple[int, Any]:
    """One request; (status, parsed JSON or the HTML text)."""
    data = urllib.parse.urlencode(params)
    url = server.url + path
    if method == "GET":
        url += "?" + data
    req = urllib.request.Request(url, data=data.encode() if method == "POST" else None)
    if auth is not None:
        cred = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", "Basic " + cred)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            status, body = resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read().decode()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def update(server: JenkinsServer, data: Any, **kw: Any) -> tuple[int, Any]:
    return call(
        server,
        "metadata-httpcli/update",
        {"node": NODE, "replace": "true", "data": json.dumps(data)},
        **kw,
    )


def resource(rid: str, children: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "metadata-type": "external-resource",
        "name": rid,
        "id": rid,
        **extra,
        "children": children,
    }


def string(name: str, value: str) -> dict[str, Any]:
    return {"metadata-type": "metadata-string", "name": name, "value": value}


def tree(name: str, children: list[Any]) -> dict[str, Any]:
    return {"metadata-type": "metadata-tree", "name": name, "children": children}


def info(id_: str, url: str = "job/x/1/") -> str:
    return json.dumps({"id": id_, "url": url})


def test_replace_merges_by_name_and_keeps_state_and_old_children(server: JenkinsServer) -> None:
    jenkins = server.jenkins
    jenkins.add_treenode(NODE, "Phones")  # an administrator's External Resource TreeNode
    doc = [tree("phones", [resource("P1", [string("model", "Pixel"), string("os", "14")])])]
    assert update(server, doc) == (
        200,
        {"type": "ok", "errorCode": 0, "errorName": "OK", "message": "OK"},
    )
    assert call(server, "external-resource-httpcli/disable", {"node": NODE, "id": "P1"})[0] == 200
    status, _ = call(
        server,
        "external-resource-httpcli/lockResource",
        {"node": NODE, "id": "P1", "lockedBy": "me", "clientInfo": info("x")},
    )
    assert status == 200
    # A new value without `enabled` and without `os`: both kept; `model` replaced.
    changed = [tree("PHONES", [resource("p1", [string("MODEL", "Pixel 8")])])]
    assert update(server, changed)[0] == 200
    top = jenkins.snapshot(NODE)
    assert len(top) == 1 and top[0]["metadata-type"] == "externalresource-treenode"
    assert top[0]["name"] == "Phones"
    [res] = top[0]["children"]
    assert res["enabled"] is False
    assert res["locked"] == {"stashed-by": "me", "type": "EXTERNAL", "lease": None}
    assert "key" not in res["locked"]
    assert {c["name"]: c["value"] for c in res["children"]} == {"MODEL": "Pixel 8", "os": "14"}
    # `enabled` given: it wins.
    update(server, [tree("phones", [resource("P1", [], enabled=True)])])
    assert jenkins.resources(NODE)["P1"]["enabled"] is True


def test_document_errors(server: JenkinsServer) -> None:
    good = [tree("t", [resource("r", [])])]
    # ERR_NO_ITEM for an unknown node (names are case-sensitive).
    status, body = call(
        server,
        "metadata-httpcli/update",
        {"node": "BUILD-1", "replace": "true", "data": json.dumps(good)},
    )
    assert (status, body["errorCode"], body["errorName"]) == (404, -1, "ERR_NO_ITEM")
    # ERR_BAD_DATA: a required field missing, a wrong type, an unknown metadata-type.
    for bad in (
        [tree("t", [{"metadata-type": "external-resource", "name": "r"}])],
        [tree("t", [resource("r", [string("a", 1)])])],  # type: ignore[arg-type]
        [{"metadata-type": "metadata-number-ish", "name": "n"}],
        [tree("t", [string("a", "1"), string("A", "2")])],
    ):
        status, body = update(server, bad)
        assert (status, body["type"], body["errorCode"], body["errorName"]) == (
            400,
            "error",
            2,
            "ERR_BAD_DATA",
        )
    # HTML 500: invalid JSON, an externalresource-treenode, a missing parameter,
    # an unexpected key (the real plugin ignores it; the fake refuses typos).
    for params in (
        {"node": NODE, "replace": "true", "data": "[{"},
        {
            "node": NODE,
            "replace": "true",
            "data": json.dumps(
                [{"metadata-type": "externalresource-treenode", "name": "x", "children": []}]
            ),
        },
        {"node": NODE, "replace": "true"},
        {"node": NODE, "replace": "true", "data": json.dumps([tree("t", [])]), "extra": "1"},
        {
            "node": NODE,
            "replace": "true",
            "data": json.dumps([tree("t", [resource("r", [], reserved=None)])]),
        },
    ):
        status, body = call(server, "metadata-httpcli/update", params)
        assert status == 500 and isinstance(body, str) and "<html>" in body, params
    assert server.jenkins.snapshot(NODE) == []  # nothing half-applied
    # Without replace=true an existing name is refused.
    assert update(server, good)[0] == 200
    status, body = call(server, "metadata-httpcli/update", {"node": NODE, "data": json.dumps(good)})
    assert (status, body["errorName"]) == (400, "ERR_BAD_DATA")


def test_httpcli_answers_and_circular_rule(server: JenkinsServer) -> None:
    jenkins = server.jenkins
    update(server, [tree("t", [resource("r", [])])])
    cli = "external-resource-httpcli/"
    status, body = call(server, cli + "enable", {"node": NODE, "id": "nope"})
    assert (status, body["errorCode"], body["errorName"]) == (404, -2, "ERR_NO_METADATA")
    status, body = call(server, cli + "enable", {"node": "other", "id": "r"})
    assert (status, body["errorCode"]) == (404, -1)
    status, body = call(server, cli + "frobnicate", {"node": NODE, "id": "r"})
    assert (status, body["errorCode"], body["errorName"]) == (400, 1, "ERR_BAD_CMD")
    for command, params in (
        ("lockResource", {"node": NODE, "id": "r", "clientInfo": info("x")}),  # no lockedBy
        ("reserveResource", {"node": NODE, "id": "r", "reservedBy": "a", "clientInfo": "{x"}),
        ("releaseResource", {"node": NODE, "id": "r"}),
        ("expireReservation", {"node": NODE, "id": "r", "clientInfo": info("x")}),
    ):
        status, body = call(server, cli + command, params)
        assert status == 500 and "<html>" in body, command
    # The Jenkins' own root URL, character for character: Ignored, nothing changes.
    own = {"node": NODE, "id": "r", "reservedBy": "job/a/", "clientInfo": info(server.url)}
    status, body = call(server, cli + "reserveResource", own)
    assert (status, body["type"], body["message"]) == (200, "ok", "Ignored")
    assert jenkins.resources(NODE)["r"]["reserved"] is None
    almost = {**own, "clientInfo": info(server.url.rstrip("/"))}
    assert call(server, cli + "reserveResource", almost)[1]["message"] == "OK"
    assert jenkins.resources(NODE)["r"]["reserved"]["stashed-by"] == "job/a/"
    lock = {"node": NODE, "id": "r", "lockedBy": "job/a/1/", "clientInfo": info("http://b/")}
    call(server, cli + "lockResource", lock)
    res = jenkins.resources(NODE)["r"]
    assert res["reserved"] is None and res["locked"]["type"] == "EXTERNAL"
    call(server, cli + "releaseResource", {"node": NODE, "id": "r", "clientInfo": info("z")})
    res = jenkins.resources(NODE)["r"]
    assert res["reserved"] is None and res["locked"] is None
    call(server, cli + "reserveResource", {**own, "clientInfo": info("z")})
    call(server, cli + "expireReservation", {"node": NODE, "id": "r"})
    assert jenkins.resources(NODE)["r"]["reserved"] is None
    assert [r.command for r in jenkins.recorded()][-2:] == ["reserveResource", "expireReservation"]


def test_basic_auth_and_permissions(server: JenkinsServer) -> None:
    update(server, [tree("t", [resource("r", [])])])
    params = {"node": NODE, "id": "r", "lockedBy": "a", "clientInfo": info("x")}
    path = "external-resource-httpcli/lockResource"
    assert call(server, path, params, auth=None)[0] == 401
    assert call(server, path, params, auth=("agent", "wrong"))[0] == 401
    assert call(server, path, params, auth=("nobody", TOKEN))[0] == 401
    status, body = call(server, path, params, auth=("viewer", "view"))
    assert status == 403 and "ExternalResource/LockRelease" in body
    # replace=true needs Metadata/Replace as well as Metadata/Update.
    status, _ = update(server, [tree("t", [])], auth=("viewer", "view"))
    assert status == 403
    assert (
        call(
            server,
            "external-resource-httpcli/disable",
            {"node": NODE, "id": "r"},
            auth=("viewer", "view"),
        )[0]
        == 200
    )
    assert server.jenkins.recorded("lockResource")[-1].user == "viewer"


def test_get_shape_and_outages(server: JenkinsServer) -> None:
    jenkins = server.jenkins
    update(server, [tree("t", [resource("r", [string("model", "x")], description="d")])])
    jenkins.set_internal(NODE, "r", "locked", "job/a/3/")
    status, body = call(server, "metadata-httpcli/get", {"node": NODE}, method="GET")
    assert status == 200 and isinstance(body, list)
    [res] = body[0]["children"]
    assert res["metadata-type"] == "external-resource" and res["description"] == "d"
    assert res["reserved"] is None and res["locked"]["type"] == "INTERNAL"
    lease = res["locked"]["lease"]
    assert set(lease) == {"server-time", "slave-iso-time"}
    assert set(lease["server-time"]) == {"millis", "time-zone"}
    iso = datetime.fromisoformat(lease["slave-iso-time"])  # ISO 8601 with offset, same instant
    assert iso.utcoffset() is not None
    assert int(iso.timestamp()) == lease["server-time"]["millis"] // 1000
    assert call(server, "metadata-httpcli/get", {"node": "x"}, method="GET")[0] == 404
    jenkins.outage.errors = True
    status, body = call(server, "metadata-httpcli/get", {"node": NODE}, method="GET")
    assert status == 500 and "<html>" in body
    jenkins.outage.errors = False
    server.down()
    with pytest.raises(urllib.error.URLError):
        call(server, "metadata-httpcli/get", {"node": NODE}, method="GET")
    server.up()
    assert call(server, "metadata-httpcli/get", {"node": NODE}, method="GET")[0] == 200


def test_runs_as_a_subprocess() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.jenkins", "--node", NODE, "--user", "agent:tok"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line
        url = line.split()[-1]
        fake = JenkinsServer(FakeJenkins(), port=int(url.rstrip("/").rsplit(":", 1)[1]))
        status, body = call(
            fake,
            "metadata-httpcli/update",
            {"node": NODE, "replace": "true", "data": json.dumps([tree("t", [])])},
            auth=("agent", "tok"),
        )
        assert (status, body["message"]) == (200, "OK")
        with urllib.request.urlopen(url + "_fake/requests", timeout=5) as resp:
            [recorded] = json.loads(resp.read())
        assert recorded["path"] == "/metadata-httpcli/update" and recorded["status"] == 200
    finally:
        proc.terminate()
        proc.wait(5)
