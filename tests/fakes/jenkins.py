"""A strict Jenkins test server: the Metadata plugin and the External Resource Dispatcher.

It answers the two httpcli root actions of docs/jenkins.md the
way the plugins do -- merge rules, error codes, HTML 500 pages, the circular
``clientInfo`` rule, basic auth and permissions -- and refuses what a real
Jenkins would choke on. Where the real Jenkins silently ignores something (an
unknown parameter, an unknown key in a metadata value) this server refuses it
with an HTML 500, so a typo in the agent fails a test instead of passing
unnoticed. Every request is recorded for assertions.

Use it in-process (``JenkinsServer(FakeJenkins(...)).start()`` runs it on a
free port in a thread of its own, so plain synchronous tests and asyncio code
alike can talk to it) or as a subprocess::

    python -m tests.fakes.jenkins --port 0 --node build-1 --user agent:s3cret

which prints ``listening on http://127.0.0.1:PORT/`` and is steered through
``/_fake/...`` control routes (requests, outage, metadata, nodes).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import copy
import json
import re
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from aiohttp import web

# A self-signed certificate for 127.0.0.1 (valid until 2126), for HTTPS tests only.
TLS_CERT = Path(__file__).parent / "tls" / "cert.pem"
TLS_KEY = Path(__file__).parent / "tls" / "key.pem"

# Permissions, named as Jenkins names them.
# A build's JSON API below a job, folders included (job/a/job/b/7/api/json).
BUILD_API = re.compile(r"^/(job/[^/]+/)+\d+/api/json$")
READ = "Overall/Read"
METADATA_UPDATE = "Metadata/Update"
METADATA_REPLACE = "Metadata/Replace"
ENABLE_DISABLE = "ExternalResource/EnableDisable"
LOCK_RELEASE = "ExternalResource/LockRelease"
ALL_PERMISSIONS = frozenset({READ, METADATA_UPDATE, METADATA_REPLACE, ENABLE_DISABLE, LOCK_RELEASE})

TREE_TYPES = frozenset({"metadata-tree", "externalresource-treenode"})
# Keys each postable type may carry (the real plugin ignores others; we refuse them).
ALLOWED_KEYS = {
    "metadata-tree": {"metadata-type", "name", "children", "description", "generated",
                      "exposedToEnvironment"},
    "external-resource": {"metadata-type", "name", "id", "description", "enabled", "children",
                          "exposedToEnvironment", "generated"},
    "metadata-string": {"metadata-type", "name", "value", "description", "generated",
                        "exposedToEnvironment"},
}  # fmt: skip
REQUIRED_KEYS = {
    "metadata-tree": ("name", "children"),
    "external-resource": ("name", "id"),
    "metadata-string": ("name", "value"),
}

HTTPCLI_COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    # command: (required parameters besides node and id, permission)
    "enable": ((), ENABLE_DISABLE),
    "disable": ((), ENABLE_DISABLE),
    "expireReservation": ((), LOCK_RELEASE),
    "lockResource": (("lockedBy", "clientInfo"), LOCK_RELEASE),
    "reserveResource": (("reservedBy", "clientInfo"), LOCK_RELEASE),
    "releaseResource": (("clientInfo",), LOCK_RELEASE),
}


class HtmlError(Exception):
    """Jenkins answers with an HTML page: 500 for an uncaught exception, 404 for no such page."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


class JsonError(Exception):
    """Jenkins answers with its JSON error object."""

    def __init__(self, status: int, code: int, name: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.name = name
        self.message = message


def no_item(what: str) -> JsonError:
    return JsonError(404, -1, "ERR_NO_ITEM", f"No such node: {what}")


def no_metadata(what: str) -> JsonError:
    return JsonError(404, -2, "ERR_NO_METADATA", f"No such external resource: {what}")


def bad_data(why: str) -> JsonError:
    return JsonError(400, 2, "ERR_BAD_DATA", why)


def bad_cmd(why: str) -> JsonError:
    return JsonError(400, 1, "ERR_BAD_CMD", why)


class Forbidden(Exception):
    """HTTP 401 (who are you) or 403 (you may not)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class User:
    """A Jenkins user with an API token and the permissions it has on every node."""

    token: str
    permissions: frozenset[str] = ALL_PERMISSIONS


@dataclass
class Recorded:
    """One request as the server saw it and what it answered."""

    method: str
    path: str
    params: dict[str, str]
    user: str | None
    status: int
    answer: Any
    at: float

    @property
    def command(self) -> str:
        """The last path element: ``update``, ``get``, ``lockResource``..."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def data(self) -> Any:
        """The parsed ``data`` parameter of a metadata update."""
        return json.loads(self.params["data"])

    @property
    def client_info(self) -> dict[str, str]:
        """The parsed ``clientInfo`` parameter."""
        return json.loads(self.params["clientInfo"])  # type: ignore[no-any-return]


@dataclass
class Outage:
    """How the server misbehaves: answer 500s, answer ``delay`` seconds late, or hang.

    ``hang``: every request is held, unanswered, until the hang ends (or the
    server stops), and only then carried out -- as a wedged Jenkins that comes
    back works through its queue, requests whose clients gave up long ago too.
    """

    errors: bool = False
    delay: float = 0.0
    hang: bool = False


def _name_key(value: Mapping[str, Any]) -> str:
    return str(value["name"]).lower()


def _find(container: list[dict[str, Any]], name: str) -> int | None:
    low = name.lower()
    for i, value in enumerate(container):
        if str(value["name"]).lower() == low:
            return i
    return None


def _validate(value: Any, where: str) -> None:
    """Check one posted metadata value as the plugins' JSON factories would."""
    if not isinstance(value, dict):
        raise bad_data(f"{where}: a metadata value must be a JSON object")
    kind = value.get("metadata-type")
    if kind == "externalresource-treenode":
        # The plugin has no JSON factory for it: an exception, an HTML page.
        raise HtmlError(f"{where}: cannot create externalresource-treenode from JSON")
    if kind not in ALLOWED_KEYS:
        raise bad_data(f"{where}: unknown metadata-type {kind!r}")
    extra = set(value) - ALLOWED_KEYS[kind]
    if extra:
        raise HtmlError(f"{where}: unexpected keys {sorted(extra)} in {kind}")
    for key in REQUIRED_KEYS[kind]:
        if key not in value:
            raise bad_data(f"{where}: {kind} needs {key!r}")
    for key in ("name", "id", "value", "description"):
        if key in value and not isinstance(value[key], str):
            raise bad_data(f"{where}: {key!r} must be a string")
    if not value["name"]:
        raise bad_data(f"{where}: empty name")
    for key in ("enabled", "generated", "exposedToEnvironment"):
        if key in value and not isinstance(value[key], bool):
            raise bad_data(f"{where}: {key!r} must be true or false")
    children = value.get("children", [])
    if not isinstance(children, list):
        raise bad_data(f"{where}: children must be an array")
    seen: set[str] = set()
    for i, child in enumerate(children):
        _validate(child, f"{where}/{value['name']}[{i}]")
        if _name_key(child) in seen:
            raise bad_data(f"{where}/{value['name']}: two children named {child['name']!r}")
        seen.add(_name_key(child))


def _normalise(value: dict[str, Any]) -> dict[str, Any]:
    """A posted value as Jenkins stores it (defaults filled in, children too)."""
    kind = value["metadata-type"]
    out: dict[str, Any] = {
        "metadata-type": kind,
        "name": value["name"],
        "description": value.get("description", ""),
        "generated": value.get("generated", False),
        "exposedToEnvironment": value.get("exposedToEnvironment", False),
    }
    if kind == "metadata-string":
        out["value"] = value["value"]
        return out
    if kind == "external-resource":
        out["id"] = value["id"]
        out["enabled"] = value.get("enabled", True)
        out["reserved"] = None
        out["locked"] = None
    out["children"] = [_normalise(c) for c in value.get("children", [])]
    return out


def _merge(container: list[dict[str, Any]], value: dict[str, Any], replace: bool) -> None:
    """The Metadata plugin's merge of one posted value into a parent's children."""
    index = _find(container, value["name"])
    if index is None:
        container.append(_normalise(value))
        return
    old = container[index]
    if not replace:
        raise bad_data(f"{value['name']!r} already exists; replace=true is needed")
    if old["metadata-type"] in TREE_TYPES and value["metadata-type"] == "metadata-tree":
        # An existing tree node keeps its type (and description) and takes the children.
        for child in value["children"]:
            _merge(old["children"], child, replace)
        return
    new = _normalise(value)
    if old["metadata-type"] == "external-resource" and new["metadata-type"] == "external-resource":
        new["reserved"] = old["reserved"]
        new["locked"] = old["locked"]
        if "enabled" not in value:
            new["enabled"] = old["enabled"]
        names = {_name_key(c) for c in new["children"]}
        new["children"].extend(c for c in old["children"] if _name_key(c) not in names)
    container[index] = new


def _walk_resources(values: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for value in values:
        if value["metadata-type"] == "external-resource":
            yield value
        yield from _walk_resources(value.get("children", []))


def _stash(who: str, kind: str, key: str | None = None, lease_ms: int | None = None) -> Any:
    """Jenkins' StashInfo as JSON: null members left out, ``lease`` always present."""
    out: dict[str, Any] = {"stashed-by": who, "type": kind}
    if key is not None:
        out["key"] = key
    if lease_ms is None:
        out["lease"] = None
        return out
    # As Jenkins keeps what the agent answered: the instant, and the agent's ISO 8601 text.
    iso = datetime.fromtimestamp(lease_ms // 1000, UTC).astimezone(timezone(timedelta(hours=1)))
    out["lease"] = {
        "server-time": {"millis": lease_ms, "time-zone": "GMT+01:00"},
        "slave-iso-time": iso.isoformat(timespec="seconds"),
    }
    return out


class FakeJenkins:
    """The state and rules of one Jenkins controller with both plugins installed.

    ``users`` empty means an open Jenkins (anonymous may do everything);
    otherwise every request needs basic auth with a user's API token.
    ``root_url`` is the controller's own URL (``JenkinsServer`` fills it in).
    """

    def __init__(
        self,
        nodes: Iterable[str] = (),
        users: Mapping[str, User] | None = None,
        root_url: str | None = None,
    ) -> None:
        self.root_url = root_url or ""
        self.users = dict(users or {})
        self.metadata: dict[str, list[dict[str, Any]]] = {n: [] for n in nodes}
        self.requests: list[Recorded] = []
        self.outage = Outage()
        self.held = 0  # requests that arrived while it hung (carried out when it came back)
        # Values with these names are refused with ERR_BAD_DATA (as Jenkins refuses
        # a document it cannot take), to test how the agent copes.
        self.reject_names: set[str] = set()
        # Changes are applied but answered WARN_NO_SAVE (Jenkins could not write its disk).
        self.no_save = False
        # Builds by URL below the root (``job/phone-tests/12/``): True while building.
        self.builds: dict[str, bool] = {}
        self.lock = threading.Lock()  # handlers run in the server's thread

    # --------------------------------------------------------- test helpers

    def add_node(self, name: str, metadata: list[dict[str, Any]] | None = None) -> None:
        """Create a node, optionally with metadata already in JSON form (as GET shows it)."""
        with self.lock:
            self.metadata[name] = copy.deepcopy(metadata or [])

    def add_treenode(self, node: str, name: str) -> None:
        """What an administrator does on the node page: an External Resource TreeNode."""
        with self.lock:
            self.metadata[node].append(
                {
                    "metadata-type": "externalresource-treenode",
                    "name": name,
                    "description": "",
                    "generated": False,
                    "exposedToEnvironment": False,
                    "children": [],
                }
            )

    def snapshot(self, node: str) -> list[dict[str, Any]]:
        """The node's metadata as ``metadata-httpcli/get`` answers it."""
        with self.lock:
            return copy.deepcopy(self.metadata[node])

    def resources(self, node: str) -> dict[str, dict[str, Any]]:
        """Every external-resource on the node, by id."""
        return {r["id"]: r for r in _walk_resources(self.snapshot(node))}

    def recorded(self, command: str | None = None) -> list[Recorded]:
        """Recorded requests, optionally only one command (``update``, ``enable``...)."""
        with self.lock:
            return [r for r in self.requests if command is None or r.command == command]

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self.lock:
            self.requests.clear()

    def set_internal(self, node: str, resource_id: str, kind: str, who: str) -> None:
        """Mark a resource reserved/locked by this Jenkins itself (after its own JSON-RPC call)."""
        with self.lock:
            res = self._resource(node, resource_id)
            stash = _stash(who, "INTERNAL", key="k", lease_ms=int(time.time() * 1000))
            res["reserved"], res["locked"] = (stash, None) if kind == "reserved" else (None, stash)

    # ----------------------------------------------------------------- auth

    def _authenticate(self, header: str | None) -> str | None:
        if not self.users:
            return None
        if not header or not header.startswith("Basic "):
            raise Forbidden(401, "Authentication required")
        try:
            user, _, token = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise Forbidden(401, "Invalid basic auth header") from exc
        known = self.users.get(user)
        if known is None or known.token != token:
            raise Forbidden(401, "Invalid password/token for user: " + user)
        return user

    def _require(self, user: str | None, permission: str) -> None:
        if user is None:
            return
        if permission not in self.users[user].permissions:
            raise Forbidden(403, f"{user} is missing the {permission} permission")

    # ------------------------------------------------------------- handlers

    def _node(self, name: str) -> list[dict[str, Any]]:
        values = self.metadata.get(name)  # Jenkins node names are case-sensitive
        if values is None:
            raise no_item(name)
        return values

    def _resource(self, node: str, resource_id: str) -> dict[str, Any]:
        for res in _walk_resources(self._node(node)):
            if res["id"] == resource_id:
                return res
        raise no_metadata(f"{resource_id} on {node}")

    def metadata_get(self, user: str | None, params: Mapping[str, str]) -> Any:
        """``GET metadata-httpcli/get?node=``."""
        _required(params, ("node",), ())
        values = self._node(params["node"])
        self._require(user, READ)
        return copy.deepcopy(values)

    def build(self, user: str | None, path: str, params: Mapping[str, str]) -> Any:
        """``GET {build}api/json?tree=building,result``: a build's state, as Jenkins' JSON API."""
        build = path.removeprefix("/").removesuffix("api/json")
        self._require(user, READ)
        if build not in self.builds:
            raise HtmlError(f"Not Found: {build}", 404)
        building = self.builds[build]
        full = {
            "_class": "hudson.model.FreeStyleBuild",
            "building": building,
            "result": None if building else "SUCCESS",
            "number": int(build.split("/")[-2]),
        }
        tree = params.get("tree")
        wanted = set(tree.split(",")) | {"_class"} if tree else set(full)
        return {k: v for k, v in full.items() if k in wanted}  # fmt: skip

    def metadata_update(self, user: str | None, params: Mapping[str, str]) -> Any:
        """``POST metadata-httpcli/update`` (node, data, replace)."""
        _required(params, ("node", "data"), ("replace",))
        try:
            data = json.loads(params["data"])
        except ValueError as exc:
            raise HtmlError(f"net.sf.json.JSONException: {exc}") from exc
        replace = params.get("replace", "false").lower() == "true"
        values = self._node(params["node"])
        self._require(user, METADATA_UPDATE)
        if replace:
            self._require(user, METADATA_REPLACE)
        posted = data if isinstance(data, list) else [data]
        seen: set[str] = set()
        for i, value in enumerate(posted):
            _validate(value, f"data[{i}]")
            if _name_key(value) in seen:
                raise bad_data(f"two values named {value['name']!r}")
            seen.add(_name_key(value))
        for res in _walk_resources(posted):
            if res["name"] in self.reject_names:
                raise bad_data(f"cannot store {res['name']!r}")
        work = copy.deepcopy(values)  # all or nothing
        for value in posted:
            _merge(work, value, replace)
        values[:] = work
        return _unsaved() if self.no_save else _ok("OK")

    def httpcli(self, command: str, user: str | None, params: Mapping[str, str]) -> Any:
        """``external-resource-httpcli/<command>``."""
        if command not in HTTPCLI_COMMANDS:
            raise bad_cmd(f"unknown command {command!r}")
        extra, permission = HTTPCLI_COMMANDS[command]
        _required(params, ("node", "id", *extra), ())
        info: Any = None
        if "clientInfo" in params:
            try:
                info = json.loads(params["clientInfo"])
            except ValueError as exc:
                raise HtmlError(f"clientInfo is not JSON: {exc}") from exc
            if not isinstance(info, dict) or not isinstance(info.get("id"), str):
                raise HtmlError("clientInfo must be a JSON object with a string id")
        res = self._resource(params["node"], params["id"])
        self._require(user, permission)
        if info is not None and info["id"] == self.root_url:
            return _ok("Ignored")
        if command in ("enable", "disable"):
            res["enabled"] = command == "enable"
        elif command == "expireReservation":
            res["reserved"] = None
        elif command == "lockResource":
            res["locked"], res["reserved"] = _stash(params["lockedBy"], "EXTERNAL"), None
        elif command == "reserveResource":
            res["reserved"], res["locked"] = _stash(params["reservedBy"], "EXTERNAL"), None
        else:
            res["reserved"] = res["locked"] = None
        return _unsaved() if self.no_save else _ok("OK")


def _ok(message: str) -> dict[str, Any]:
    return {"type": "ok", "errorCode": 0, "errorName": "OK", "message": message}


def _unsaved() -> dict[str, Any]:
    return {"type": "warning", "errorCode": 10, "errorName": "WARN_NO_SAVE",
            "message": "Could not save the node's configuration"}  # fmt: skip


def _required(params: Mapping[str, str], required: Iterable[str], optional: Iterable[str]) -> None:
    required = tuple(required)
    for name in required:
        if name not in params:
            raise HtmlError(f"Required Query parameter {name} is missing")
    extra = set(params) - set(required) - set(optional)
    if extra:
        raise HtmlError(
            f"unexpected parameters {sorted(extra)} (the fake is stricter than Jenkins)"
        )


def _html(status: int, message: str) -> web.Response:
    body = (
        f"<html><head><title>Error {status}</title></head>"
        f"<body><h2>Oops!</h2><pre>{message}</pre></body></html>"
    )
    return web.Response(status=status, text=body, content_type="text/html")


def make_app(jenkins: FakeJenkins, stopping: asyncio.Event | None = None) -> web.Application:  # noqa: PLR0915
    """The aiohttp application serving ``jenkins``; ``stopping`` cuts delays short."""
    stopping = stopping or asyncio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        params: dict[str, str] = dict(request.query)
        if request.method == "POST":
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        delay = jenkins.outage.delay
        if delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
        if jenkins.outage.hang:
            jenkins.held += 1
            while jenkins.outage.hang and not stopping.is_set():
                # ``hang`` is set from the test's thread: polled, with stopping cutting it short.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), 0.01)
        with jenkins.lock:
            user: str | None = None
            status, answer = 200, None
            try:
                if jenkins.outage.errors:
                    raise HtmlError("Service Unavailable (outage switched on)")
                user = jenkins._authenticate(request.headers.get("Authorization"))
                path = request.path
                if path == "/metadata-httpcli/get" and request.method == "GET":
                    answer = jenkins.metadata_get(user, params)
                elif path == "/metadata-httpcli/update" and request.method == "POST":
                    answer = jenkins.metadata_update(user, params)
                elif path.startswith("/external-resource-httpcli/"):
                    command = path.removeprefix("/external-resource-httpcli/")
                    answer = jenkins.httpcli(command, user, params)
                elif BUILD_API.match(path) and request.method == "GET":
                    answer = jenkins.build(user, path, params)
                else:
                    status, answer = 404, "Not Found"
            except JsonError as err:
                status = err.status
                answer = {
                    "type": "error",
                    "errorCode": err.code,
                    "errorName": err.name,
                    "message": err.message,
                }
            except Forbidden as err:
                status, answer = err.status, err.message
            except HtmlError as err:
                status, answer = err.status, str(err)
            jenkins.requests.append(
                Recorded(request.method, request.path, params, user, status, answer, time.time())
            )
        if isinstance(answer, str):
            return _html(status, answer)
        return web.json_response(answer, status=status)

    async def control(request: web.Request) -> web.Response:
        what = request.match_info["what"]
        if what == "requests":
            rows = [
                {"method": r.method, "path": r.path, "params": r.params, "status": r.status,
                 "answer": r.answer, "at": r.at}
                for r in jenkins.recorded()
            ]  # fmt: skip
            return web.json_response(rows)
        if what == "metadata":
            return web.json_response(jenkins.snapshot(request.query["node"]))
        if what == "outage":
            body = await request.json()
            jenkins.outage = Outage(
                bool(body.get("errors")), float(body.get("delay", 0)), bool(body.get("hang"))
            )
            return web.json_response({"ok": True})
        if what == "nodes":
            body = await request.json()
            jenkins.add_node(body["name"], body.get("metadata"))
            return web.json_response({"ok": True})
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_route("*", "/_fake/{what}", control)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


@dataclass
class JenkinsServer:
    """Runs a FakeJenkins on 127.0.0.1 in a thread with its own event loop."""

    jenkins: FakeJenkins
    port: int = 0
    tls: bool = False  # serve HTTPS with the test certificate (TLS_CERT, for 127.0.0.1)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None
    _stopping: asyncio.Event | None = None

    @property
    def url(self) -> str:
        """The root URL, with its trailing slash."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/"

    def start(self) -> JenkinsServer:
        """Start serving; sets the Jenkins' root URL unless it has one."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._call(self._setup())
        if not self.jenkins.root_url:
            self.jenkins.root_url = self.url
        return self

    def down(self) -> None:
        """Stop listening (connections are refused) until ``up``."""
        self._call(self._stop_site())

    def up(self) -> None:
        """Listen again on the same port."""
        self._call(self._start_site())

    def stop(self) -> None:
        """Stop serving and end the thread."""
        if self._loop is None or self._thread is None:
            return
        assert self._runner is not None and self._stopping is not None
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> JenkinsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _setup(self) -> None:
        self._stopping = asyncio.Event()
        self._runner = web.AppRunner(
            make_app(self.jenkins, self._stopping), access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await self._start_site()

    async def _start_site(self) -> None:
        assert self._runner is not None
        context = None
        if self.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(TLS_CERT, TLS_KEY)
        self._site = web.TCPSite(
            self._runner, "127.0.0.1", self.port, reuse_address=True, ssl_context=context
        )
        await self._site.start()
        server = self._site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]

    async def _stop_site(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None
        assert self._runner is not None and self._runner.server is not None
        for conn in self._runner.server.connections:  # kept-alive ones too: really down
            conn.force_close()


def main() -> None:
    """Run as a subprocess: print the URL, serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--node", action="append", default=[], help="a node name (repeatable)")
    parser.add_argument("--user", action="append", default=[], help="USER:TOKEN (repeatable)")
    args = parser.parse_args()
    users = {u.split(":", 1)[0]: User(u.split(":", 1)[1]) for u in args.user}
    server = JenkinsServer(FakeJenkins(args.node, users), port=args.port).start()
    print(f"listening on {server.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
