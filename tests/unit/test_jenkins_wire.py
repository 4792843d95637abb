"""The wire to Jenkins: documents the plugins accept, and every failure told apart."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from agent.coordinator.documents import (
    client_info,
    metadata_children,
    parse_tree,
    resource_value,
    tree_document,
)
from agent.coordinator.jenkins import Failure, JenkinsClient, JenkinsError
from agent.model import Holder, HoldKind, Kind, Resource
from tests.fakes.jenkins import READ, FakeJenkins, JenkinsServer, User
from tests.support.net import free_port

NODE = "build-1"


@pytest.fixture
def server() -> Iterator[JenkinsServer]:
    users = {"agent": User("tok"), "reader": User("r", frozenset({READ}))}
    with JenkinsServer(FakeJenkins([NODE], users)) as srv:
        yield srv


def client(server: JenkinsServer, node: str = NODE, **kw: object) -> JenkinsClient:
    args: dict[str, object] = {"user": "agent", "token": "tok", "timeout": 0.5, **kw}
    return JenkinsClient(server.url, node, **args)  # type: ignore[arg-type]


async def failure(coro: object) -> JenkinsError:
    with pytest.raises(JenkinsError) as info:
        await coro  # type: ignore[misc]
    return info.value


PHONE = Resource(
    id="ABC123",
    name="Pixel 7",
    kind=Kind.ANDROID,
    description="Google Pixel 7 on USB port 1-2",
    metadata={"model": "Pixel 7", "android.release": "14", "android.sdk": "34"},
)


def test_documents() -> None:
    value = resource_value(PHONE, PHONE.metadata)
    assert "enabled" not in value
    assert value == {
        "metadata-type": "external-resource",
        "name": "ABC123",
        "id": "ABC123",
        "description": "Google Pixel 7 on USB port 1-2",
        "children": [
            {
                "metadata-type": "metadata-tree",
                "name": "android",
                "children": [
                    {"metadata-type": "metadata-string", "name": "release", "value": "14"},
                    {"metadata-type": "metadata-string", "name": "sdk", "value": "34"},
                ],
            },
            {"metadata-type": "metadata-string", "name": "model", "value": "Pixel 7"},
        ],
    }
    assert resource_value(PHONE, {}, enabled=False)["enabled"] is False
    # A name that is both a value and a prefix: the tree wins (selectable by path).
    assert [c["name"] for c in metadata_children({"a": "1", "a.b": "2"})] == ["a"]
    assert client_info(Holder("http://j:8080/", "job/x/1/")) == (
        '{"id":"http://j:8080/","url":"job/x/1/"}'
    )


async def test_round_trip_through_the_plugin_merge(server: JenkinsServer) -> None:
    jc = client(server)
    try:
        document = tree_document("phones", [resource_value(PHONE, PHONE.metadata)])
        answer = await jc.update(document)
        assert answer.message == "OK" and not answer.ignored
        await jc.command(
            "lockResource",
            "ABC123",
            lockedBy="job/x/1/",
            clientInfo=client_info(Holder("http://j/", "job/x/1/")),
        )
        own = client_info(Holder(server.url, "job/y/"))
        assert (await jc.command("releaseResource", "ABC123", clientInfo=own)).ignored
        remote = parse_tree(await jc.get_metadata(), "PHONES")
    finally:
        await jc.close()
    [phone] = remote.values()
    assert phone.id == "ABC123" and phone.enabled and phone.hold is HoldKind.LOCKED
    assert dict(phone.values) == dict(PHONE.metadata)
    assert phone.description == PHONE.description


async def test_failures_are_told_apart(server: JenkinsServer) -> None:
    jenkins = server.jenkins
    good = tree_document("t", [resource_value(PHONE, {})])
    clients = [
        client(server, token="bad"),
        client(server, user="reader", token="r"),
        client(server, node="no-such-node"),
        client(server),
    ]
    bad_token, reader, wrong_node, jc = clients
    try:
        err = await failure(bad_token.update(good))
        assert (err.kind, err.status) == (Failure.AUTH, 401) and "token" in err.message
        err = await failure(reader.update(good))
        assert (err.kind, err.status) == (Failure.AUTH, 403)
        assert "Metadata/Update" in err.message and "permission" in err.message
        err = await failure(wrong_node.get_metadata())
        assert err.kind is Failure.NO_NODE and "'no-such-node'" in err.message
        err = await failure(jc.command("enable", "ghost"))
        assert err.kind is Failure.NO_RESOURCE and "ghost" in err.message
        jenkins.reject_names.add("ABC123")
        err = await failure(jc.update(good))
        assert err.kind is Failure.REJECTED and "ERR_BAD_DATA" in err.message
        assert '"name":"ABC123"' in err.message  # the rejected document is quoted
        jenkins.reject_names.clear()
        jenkins.outage.errors = True
        err = await failure(jc.update(good))
        assert (err.kind, err.status) == (Failure.SERVER, 500) and "data" in err.message
        jenkins.outage.errors = False
        jenkins.outage.delay = 1.0  # longer than the client's 0.5 s timeout
        err = await failure(jc.get_metadata())
        assert err.kind is Failure.UNREACHABLE and "in time" in err.message
        jenkins.outage.delay = 0.0
        dead = JenkinsClient(f"http://127.0.0.1:{free_port()}/", NODE, timeout=2.0)
        clients.append(dead)
        err = await failure(dead.get_metadata())
        assert err.kind is Failure.UNREACHABLE
        assert (await jc.update(good)).message == "OK"
        jenkins.no_save = True
        answer = await jc.command("disable", "ABC123")
        assert answer.unsaved and not answer.ignored
        assert jenkins.resources(NODE)["ABC123"]["enabled"] is False
    finally:
        for c in clients:
            await c.close()


async def test_deeply_nested_answer_is_a_server_failure() -> None:
    """JSON nested past Python's recursion limit is not Jenkins: a SERVER failure."""

    class Deep(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"[" * 100_000
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Deep)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    try:
        jc = JenkinsClient(f"http://127.0.0.1:{server.server_address[1]}/", NODE, timeout=5.0)
        try:
            err = await failure(jc.get_metadata())
            assert err.kind is Failure.SERVER and "not a Jenkins JSON answer" in err.message
        finally:
            await jc.close()
    finally:
        server.shutdown()
        server.server_close()
