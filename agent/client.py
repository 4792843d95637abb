"""A small blocking client of the agent's REST API, for the command line."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote


class Unreachable(Exception):
    """No agent answered at the URL."""


class ApiRefusal(Exception):
    """The agent answered with an error body."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Client:
    """Calls ``/api/`` on one agent, with a bearer token when given one."""

    def __init__(self, url: str, timeout: float = 10.0, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str) -> Any:
        """GET ``/api/<path>``."""
        return self._call("GET", path, None)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST a JSON body to ``/api/<path>``."""
        return self._call("POST", path, body)

    def stream(self, path: str, headers: dict[str, str] | None = None) -> Iterator[str]:
        """GET ``/api/<path>`` and yield its text body line by line as it arrives."""
        req = urllib.request.Request(
            f"{self.url}/api/{path}", headers={**self._auth, **(headers or {})}
        )
        try:
            # No read timeout: a followed log may be quiet for minutes (a phone booting).
            with urllib.request.urlopen(req, timeout=None) as resp:
                for raw in resp:
                    yield raw.decode("utf-8", errors="replace").rstrip("\n")
        except urllib.error.HTTPError as exc:
            raise self._refusal(exc) from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unreachable(f"no agent at {self.url}: {reason}") from exc

    def resource_path(self, resource_id: str, action: str = "") -> str:
        """``resources/<id>[/<action>]`` with the id quoted for the URL."""
        path = f"resources/{quote(resource_id, safe='')}"
        return f"{path}/{action}" if action else path

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.url}/api/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **self._auth}
            if data is not None
            else self._auth,
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise self._refusal(exc) from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unreachable(f"no agent at {self.url}: {reason}") from exc
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            # Something answers there, but not an agent (say, Jenkins on 8080).
            raise Unreachable(f"no agent at {self.url}: the answer is not JSON") from exc

    def _refusal(self, exc: urllib.error.HTTPError) -> Exception:
        """The agent's refusal; an error page without its error body is not the agent."""
        try:
            err = json.loads(exc.read())["error"]
            return ApiRefusal(int(err["code"]), str(err["message"]))
        except (ValueError, RecursionError, KeyError, TypeError, OSError):
            return Unreachable(
                f"no agent at {self.url}: HTTP {exc.code} {exc.reason} without an agent's error"
            )
