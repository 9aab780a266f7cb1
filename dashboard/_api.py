"""The dashboard's only way to the system: the hub's REST API over HTTP (docs/hub.md).

``HubApi`` wraps one ``httpx.Client`` with the bearer token. Every failure becomes an
``ApiError`` whose ``readable`` sentence is what a supervisor sees — never a traceback:
401/403 (the token), 409 (refused by the edge, or a stale read), 503 (an edge that did not
answer), 422 (a bad field), and ``HubDown`` when the hub cannot be reached at all.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["ApiError", "HubApi", "HubDown"]

_ROLES = ("viewer", "supervisor", "planner", "admin")


class ApiError(Exception):
    """The hub answered with an error (or could not be asked: ``HubDown``)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        """HTTP status (0: no answer at all)."""
        self.code = code
        """The hub's ``error.code`` (``unauthorized``, ``forbidden``, ``refused`` …)."""
        self.message = message
        """The hub's own sentence."""

    @property
    def readable(self) -> str:
        """One sentence for the page."""
        if self.status == 401:
            return f"The hub does not accept this token ({self.message})."
        if self.status == 403:
            return f"Not allowed with this token: {self.message}."
        if self.status == 404:
            return f"Not found: {self.message}."
        if self.status == 409 and self.code == "stale":
            return f"The hub's copy is older than allowed: {self.message}."
        if self.status == 409:
            return f"The edge refused it: {self.message}."
        if self.status == 422:
            return f"A field is not right: {self.message}."
        if self.status == 503:
            return f"An edge did not answer in time: {self.message}."
        return f"The hub answered {self.status} ({self.code}): {self.message}."


class HubDown(ApiError):
    """The hub could not be reached (refused, timed out, DNS …)."""

    def __init__(self, url: str, why: str) -> None:
        super().__init__(0, "hub_unreachable", f"{url}: {why}")

    @property
    def readable(self) -> str:
        return f"The hub is not reachable ({self.message}); retrying on the next refresh."


class HubApi:
    """A bearer-token client of one hub's ``/api/v1``; thread-safe (httpx.Client is)."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        """``http://host:port`` of the hub."""
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout,
                                    headers={"Authorization": f"Bearer {token}"})
        self._role: str | None = None

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                body: Any = None, reason: str | None = None) -> Any:
        """``method`` on ``/api/v1{path}`` (or ``path`` itself when it starts with
        ``/health``/``/metrics``); the decoded JSON answer, or ``ApiError``."""
        url = path if path.startswith(("/health", "/metrics")) else f"/api/v1{path}"
        headers = {"X-Reason": reason} if reason else None
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        try:
            r = self._client.request(method, url, params=clean, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise HubDown(self.base_url, str(exc) or type(exc).__name__) from exc
        if r.status_code >= 400:
            code, message = "error", r.text[:300]
            try:
                err = r.json().get("error", {})
                code, message = str(err.get("code", code)), str(err.get("message", message))
            except (ValueError, AttributeError):
                pass
            raise ApiError(r.status_code, code, message)
        if not r.content:
            return None
        if "json" not in r.headers.get("content-type", ""):
            return r.text
        return r.json()

    def get(self, path: str, **params: Any) -> Any:
        """GET with query parameters (``None`` ones left out)."""
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None, *, reason: str | None = None) -> Any:
        """POST a JSON body (a write: its ``CommandOut`` back)."""
        return self.request("POST", path, body=body if body is not None else {}, reason=reason)

    def put(self, path: str, body: Any, *, reason: str | None = None) -> Any:
        """PUT a JSON body."""
        return self.request("PUT", path, body=body, reason=reason)

    def delete(self, path: str, *, reason: str | None = None) -> Any:
        """DELETE (cancel a workflow)."""
        return self.request("DELETE", path, reason=reason)

    def pages(self, path: str, *, limit: int = 500, most: int = 10_000,
              **params: Any) -> list[dict[str, Any]]:
        """Every item of a paged list (``{items, next_cursor}``), at most ``most``."""
        items: list[dict[str, Any]] = []
        cursor = None
        while len(items) < most:
            page = self.get(path, limit=limit, cursor=cursor, **params)
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return items[:most]

    def vda_links(self, facility: str) -> dict[str, Any]:
        """The VDA 5050 link health ``facility``'s edge last reported
        (``GET /facilities/{id}/vda``: ``links``, ``left_out``, ``received_at``,
        ``age_s``, ``edge_online`` …)."""
        return dict(self.get(f"/facilities/{facility}/vda"))

    def role(self) -> str:
        """The token's role (``viewer`` … ``admin``), asked once (``GET /whoami``)."""
        if self._role is None:
            me = self.get("/whoami")
            self._role = str(me["role"])
        return self._role

    def may(self, needed: str) -> bool:
        """Whether the token's role is at least ``needed``."""
        return _ROLES.index(self.role()) >= _ROLES.index(needed)
