"""Jenkins' ResourceMonitor client, as strict as jsonrpc4j and Jackson 2 are.

The External Resource Dispatcher calls the agent with jsonrpc4j's
``JsonRpcHttpClient`` (see shared protocol section 1): ``POST /``,
``Content-Type: application/json-rpc``, a random long id written as a JSON
string, and ``params`` as the object for Reserve and Lock but as a one-element
array for Release (plugin 1.1.0, jsonrpc4j 0.18) -- or as a one-element array
for all three (the plugin's later source, jsonrpc4j 1.5).

Every answer is checked the way the Java side would take it: HTTP 200, the id
echoed unchanged, a ``result`` (an ``error`` is a failed call) holding exactly
the seven fields with their Java types. Anything else raises
``ProtocolViolation``, which is an AssertionError so a test fails on it.
"""

from __future__ import annotations

import enum
import http.client
import json
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

RESERVE = "ResourceMonitor.Resources.Reserve"
LOCK = "ResourceMonitor.Resources.Lock"
RELEASE = "ResourceMonitor.Resources.Release"

JENKINS = "http://jenkins.example:8080/"
FIELDS = frozenset({"status", "code", "message", "key", "time", "timezone", "isotime"})


class Mode(enum.Enum):
    """Which params shape the plugin build sends."""

    PLUGIN_1_1 = "plugin-1.1"  # Reserve/Lock: object; Release: [object]
    JSONRPC4J_1_5 = "jsonrpc4j-1.5"  # all three: [object]


class ProtocolViolation(AssertionError):
    """The agent answered something Jenkins would choke on."""


class JsonRpcError(Exception):
    """The agent answered a JSON-RPC ``error``: jsonrpc4j throws, Jenkins logs a failure."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"JSON-RPC error {code}: {message} ({data})")
        self.code = code
        self.message = message
        self.data = data


@dataclass(frozen=True, slots=True)
class Result:
    """The Java ``ResourceMonitor`` result, once Jackson has mapped it."""

    status: str
    code: int
    message: str
    key: str | None
    time: int
    timezone: int
    isotime: str

    @property
    def ok(self) -> bool:
        """Whether the agent said yes."""
        return self.status == "OK"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_result(result: Any) -> Result:
    """Map a ``result`` value as Jackson would (FAIL_ON_UNKNOWN_PROPERTIES), strictly."""
    if not isinstance(result, dict):
        raise ProtocolViolation(f"result must be an object, got {result!r}")
    if set(result) != FIELDS:
        extra = sorted(set(result) - FIELDS)
        missing = sorted(FIELDS - set(result))
        raise ProtocolViolation(f"result fields: unknown {extra}, missing {missing}: {result}")
    status = result["status"]
    if status not in ("OK", "NO"):
        raise ProtocolViolation(f"status must be 'OK' or 'NO' (a Java enum), got {status!r}")
    for name in ("code", "time", "timezone"):
        if not _is_int(result[name]):
            raise ProtocolViolation(f"{name} must be an integer, got {result[name]!r}")
    if not isinstance(result["message"], str):
        raise ProtocolViolation(f"message must be a string, got {result['message']!r}")
    key = result["key"]
    if key is not None and not isinstance(key, str):
        raise ProtocolViolation(f"key must be a string or null, got {key!r}")
    if (status == "OK") != (result["code"] == 0):
        raise ProtocolViolation(f"code must be 0 exactly when status is OK: {result}")
    if status == "OK" and not key:
        raise ProtocolViolation(f"an OK answer must carry the key: {result}")
    if not 2**31 < result["time"] < 2**63:
        raise ProtocolViolation(f"time must be milliseconds since the epoch: {result['time']}")
    if not -18 * 3600 <= result["timezone"] <= 18 * 3600:
        raise ProtocolViolation(f"timezone must be an offset in seconds: {result['timezone']}")
    isotime = result["isotime"]
    if not isinstance(isotime, str):
        raise ProtocolViolation(f"isotime must be a string, got {isotime!r}")
    try:
        when = datetime.fromisoformat(isotime)
    except ValueError as exc:
        raise ProtocolViolation(f"isotime is not ISO 8601: {isotime!r}") from exc
    offset = when.utcoffset()
    if offset is None:
        raise ProtocolViolation(f"isotime has no UTC offset: {isotime!r}")
    if int(offset.total_seconds()) != result["timezone"]:
        raise ProtocolViolation(f"isotime's offset is not timezone: {isotime} vs {result}")
    if int(when.timestamp()) != result["time"] // 1000:
        raise ProtocolViolation(f"isotime {isotime} is not time {result['time']} to the second")
    return Result(**result)


def check_envelope(request_id: Any, answer: Any) -> Any:
    """The JSON-RPC response object for ``request_id``; its result or JsonRpcError."""
    if not isinstance(answer, dict):
        raise ProtocolViolation(f"the response must be a JSON object, got {answer!r}")
    if answer.get("jsonrpc") != "2.0":
        raise ProtocolViolation(f'the response needs "jsonrpc": "2.0": {answer}')
    if (
        "id" not in answer
        or answer["id"] != request_id
        or type(answer["id"]) is not type(request_id)
    ):
        raise ProtocolViolation(f"id {request_id!r} not echoed unchanged: {answer}")
    if "error" in answer:
        if "result" in answer or set(answer) != {"jsonrpc", "id", "error"}:
            raise ProtocolViolation(f"an error response has jsonrpc, id and error only: {answer}")
        err = answer["error"]
        if not isinstance(err, dict) or not _is_int(err.get("code")):
            raise ProtocolViolation(f"error must be an object with an integer code: {err}")
        if not isinstance(err.get("message"), str):
            raise ProtocolViolation(f"error.message must be a string: {err}")
        raise JsonRpcError(err["code"], err["message"], err.get("data"))
    if set(answer) != {"jsonrpc", "id", "result"}:
        raise ProtocolViolation(f"a response has jsonrpc, id and result only: {answer}")
    return answer["result"]


class JsonRpc4jClient:
    """Calls the agent the way Jenkins does; one fresh connection per call."""

    def __init__(
        self,
        url: str,
        mode: Mode = Mode.PLUGIN_1_1,
        jenkins: str | None = JENKINS,
        timeout: float = 10.0,
        source: str | None = None,
    ) -> None:
        """``jenkins`` None: a Jenkins without a root URL; ``source``: the address to call from."""
        host, _, port = url.removeprefix("http://").rstrip("/").rpartition(":")
        self.host = host
        self.port = int(port)
        self.mode = mode
        self.jenkins = jenkins
        self.timeout = timeout
        self.source = source
        self.last_request: dict[str, Any] | None = None

    def reserve(self, resource: str, timeout: int | float, url: str) -> Result:
        """Reserve as the queued task ``url`` (e.g. ``job/phone-tests/``)."""
        params = {"resource": resource, "timeout": timeout, "clientInfo": self._client(url)}
        return self.call(RESERVE, params, wrap=self.mode is Mode.JSONRPC4J_1_5)

    def lock(self, resource: str, key: str | None, url: str) -> Result:
        """Lock as the build ``url`` (e.g. ``job/phone-tests/12/``)."""
        params = {"resource": resource, "key": key, "clientInfo": self._client(url)}
        return self.call(LOCK, params, wrap=self.mode is Mode.JSONRPC4J_1_5)

    def release(self, resource: str, key: str | None, url: str) -> Result:
        """Release as the build; params always arrive as a one-element array."""
        params = {"resource": resource, "key": key, "clientInfo": self._client(url)}
        return self.call(RELEASE, params, wrap=True)

    def call(self, method: str, params: dict[str, Any], wrap: bool) -> Result:
        """One call; the checked seven-field result (JsonRpcError on an error object)."""
        request_id = str(random.randint(1, 2**63 - 1))
        request = {
            "jsonrpc": "2.0",
            "method": method,
            "params": [params] if wrap else params,
            "id": request_id,
        }
        self.last_request = request
        return check_result(check_envelope(request_id, self.post(request)))

    def post(self, payload: Any) -> Any:
        """POST one JSON-RPC payload with jsonrpc4j's headers; the parsed 200 answer."""
        body = json.dumps(payload).encode()
        source = (self.source, 0) if self.source is not None else None
        conn = http.client.HTTPConnection(
            self.host, self.port, timeout=self.timeout, source_address=source
        )
        try:
            conn.request(
                "POST",
                "/",
                body=body,
                headers={
                    "Content-Type": "application/json-rpc",
                    "Accept": "application/json-rpc",
                },
            )
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise ProtocolViolation(f"HTTP {resp.status} (jsonrpc4j needs 200): {data[:300]!r}")
        try:
            return json.loads(data)
        except ValueError as exc:
            raise ProtocolViolation(f"the answer is not JSON: {data[:300]!r}") from exc

    def _client(self, url: str) -> dict[str, str]:
        # json-lib leaves out a member whose value is null: no root URL, no id.
        if self.jenkins is None:
            return {"url": url}
        return {"id": self.jenkins, "url": url}
