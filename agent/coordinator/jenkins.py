"""The client of one Jenkins: the Metadata and External Resource Dispatcher httpcli actions.

What the documents sent hold is in ``documents``; this module sends them and
knows what each answer means. Every failure becomes a
``JenkinsError`` whose ``kind`` tells the sync how to react (retry soon, retry
slowly, give up on this document) and whose message tells an administrator
what to fix.
"""

from __future__ import annotations

import enum
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from agent.config import CoordinatorSection
from agent.coordinator.excerpt import excerpt, page
from agent.credentials import CredentialError, beside_config, read_token


class Failure(enum.StrEnum):
    """How a request failed, which decides what the sync does next."""

    UNREACHABLE = "unreachable"  # connection refused/reset, timeout: retry with backoff
    SERVER = "server"  # HTTP 5xx or an answer that is not Jenkins' JSON: retry with backoff
    AUTH = "auth"  # 401/403: a configuration problem, retry slowly
    CONFIG = "config"  # unreadable token file or CA file: retry slowly
    NO_NODE = "no-node"  # ERR_NO_ITEM: the node does not exist, retry slowly
    NO_RESOURCE = "no-resource"  # ERR_NO_METADATA: register the resource again
    REJECTED = "rejected"  # ERR_BAD_DATA / ERR_BAD_CMD: do not resend the same thing
    INTERNAL = "internal"  # a bug in the agent (logged with its traceback): retry with backoff


class JenkinsError(Exception):
    """A request that did not succeed; ``kind`` says how, the message says what to do."""

    def __init__(self, kind: Failure, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class Answer:
    """Jenkins' JSON answer to a successful request."""

    message: str
    unsaved: bool = False  # WARN_NO_SAVE: applied in Jenkins' memory, not saved to disk

    @property
    def ignored(self) -> bool:
        """Jenkins recognised its own clientInfo and changed nothing."""
        return self.message == "Ignored"


# ----------------------------------------------------------------- the client


def client_for(section: CoordinatorSection, node: str, config_dir: Path | None) -> JenkinsClient:
    """A client for one ``[[coordinator]]``, as the sync and ``doctor`` both use it.

    ``node`` is the agent's node, used when the section names none. The token
    and CA file are read now: JenkinsError(CONFIG) says which file and why not.
    """
    token = None
    if section.token_file is not None:
        try:
            token = read_token(section.token_file, config_dir)
        except CredentialError as exc:
            raise JenkinsError(Failure.CONFIG, str(exc)) from exc
    context: ssl.SSLContext | bool = section.verify
    if section.verify and section.ca_file is not None:
        cafile = beside_config(section.ca_file, config_dir)
        try:
            context = ssl.create_default_context(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise JenkinsError(Failure.CONFIG, f"cannot load ca_file {cafile}: {reason}") from exc
    return JenkinsClient(
        section.url,
        section.node or node,
        user=section.user,
        token=token,
        timeout=section.timeout,
        ssl_context=context,
    )


class JenkinsClient:
    """Requests to one Jenkins for one node, with basic auth and a timeout."""

    def __init__(
        self,
        url: str,
        node: str,
        *,
        user: str | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | bool = True,
    ) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.node = node
        self._headers: dict[str, str] = {"Accept": "application/json"}
        if user is not None:
            self._headers["Authorization"] = aiohttp.encode_basic_auth(user, token or "")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self.requests = 0

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get_metadata(self) -> Any:
        """The node's whole metadata (``metadata-httpcli/get``)."""
        return await self._request("GET", "metadata-httpcli/get", {"node": self.node})

    async def update(self, document: list[dict[str, Any]]) -> Answer:
        """Post a metadata document with ``replace=true``."""
        data = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
        params = {"node": self.node, "replace": "true", "data": data}
        return _answer(await self._request("POST", "metadata-httpcli/update", params))

    async def command(self, command: str, resource_id: str, **params: str) -> Answer:
        """``external-resource-httpcli/<command>`` for one resource."""
        fields = {"node": self.node, "id": resource_id, **params}
        return _answer(await self._request("POST", f"external-resource-httpcli/{command}", fields))

    async def build_running(self, build: str) -> bool:
        """Whether the build at ``build`` (``job/NAME/12/``, below the root) is still building.

        A build or job Jenkins no longer has (404) is not running; any other
        failure is a JenkinsError, which proves nothing either way.
        """
        try:
            answer = await self._request("GET", f"{build}api/json", {"tree": "building"})
        except JenkinsError as err:
            if err.status == 404:
                return False
            raise
        if not isinstance(answer, dict) or not isinstance(answer.get("building"), bool):
            raise JenkinsError(Failure.SERVER, f"{build}api/json: no building flag in {answer!r}")
        return bool(answer["building"])

    async def _request(self, method: str, path: str, params: Mapping[str, str]) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        url = self.url + path
        self.requests += 1
        what = f"{method} {url}"
        try:
            if method == "GET":
                ctx = self._session.get(url, params=dict(params), ssl=self._ssl)
            else:
                ctx = self._session.post(url, data=dict(params), ssl=self._ssl)
            async with ctx as resp:
                body = await resp.text(errors="replace")
                status = resp.status
        except TimeoutError:
            raise JenkinsError(Failure.UNREACHABLE, f"{what}: no answer in time") from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise JenkinsError(
                Failure.CONFIG,
                f"{what}: the server's TLS certificate is not trusted ({exc.certificate_error}); "
                "set ca_file to the CA that signed it, or verify = false",
            ) from exc
        except aiohttp.ClientSSLError as exc:
            raise JenkinsError(Failure.UNREACHABLE, f"{what}: TLS failed: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise JenkinsError(Failure.UNREACHABLE, f"{what}: {exc}") from exc
        return self._interpret(what, status, body, params)

    def _interpret(self, what: str, status: int, body: str, params: Mapping[str, str]) -> Any:
        if status == 401:
            raise JenkinsError(
                Failure.AUTH,
                f"{what}: HTTP 401: Jenkins refused the credentials; "
                "check the user name and the API token (token_file)",
                status,
            )
        if status == 403:
            raise JenkinsError(
                Failure.AUTH,
                f"{what}: HTTP 403: the user lacks a permission on node {self.node!r} "
                "(needs Metadata/Update, Metadata/Replace, ExternalResource/EnableDisable "
                f"and ExternalResource/LockRelease): {page(body)}",
                status,
            )
        try:
            answer = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply
            answer = None
        if isinstance(answer, dict) and answer.get("type") == "error":
            raise self._error(what, status, answer, params)
        if status >= 500 or answer is None:
            request = {k: excerpt(v) for k, v in params.items()}
            raise JenkinsError(
                Failure.SERVER,
                f"{what}: HTTP {status}, not a Jenkins JSON answer: {page(body)} "
                f"(request: {request})",
                status,
            )
        if status >= 400:
            raise JenkinsError(Failure.SERVER, f"{what}: HTTP {status}: {page(body)}", status)
        return answer

    def _error(
        self, what: str, status: int, answer: Mapping[str, Any], params: Mapping[str, str]
    ) -> JenkinsError:
        code = answer.get("errorCode")
        message = str(answer.get("message", ""))
        if code == -1:
            return JenkinsError(
                Failure.NO_NODE,
                f"{what}: Jenkins has no node named {self.node!r} (ERR_NO_ITEM): create that "
                "node in Jenkins, or set `node` in this [[coordinator]] to the node's name",
                status,
            )
        if code == -2:
            return JenkinsError(
                Failure.NO_RESOURCE,
                f"{what}: resource {params.get('id')!r} is not on node {self.node!r} "
                f"(ERR_NO_METADATA): {message}",
                status,
            )
        if code in (1, 2):
            name = "ERR_BAD_CMD" if code == 1 else "ERR_BAD_DATA"
            sent = excerpt(params.get("data", json.dumps(dict(params))))
            return JenkinsError(
                Failure.REJECTED, f"{what}: {name}: {message}; rejected: {sent}", status
            )
        return JenkinsError(
            Failure.SERVER, f"{what}: HTTP {status}: {excerpt(str(answer))}", status
        )


def _answer(answer: Any) -> Answer:
    if not isinstance(answer, dict) or answer.get("type") not in ("ok", "warning"):
        raise JenkinsError(
            Failure.SERVER, f"unexpected answer from Jenkins: {excerpt(str(answer))}"
        )
    return Answer(str(answer.get("message", "")), answer.get("errorCode") == 10)
