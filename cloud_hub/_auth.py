"""Bearer-token auth for the hub's API: who is asking, and may they.

Every ``/api/v1`` route and the WebSocket depend on ``require(role)``; only ``/health`` (and
``/metrics``, which a scraper reads) stay open, so there are no anonymous reads or writes.
A request without a bearer token, or with one that is malformed, unknown or revoked, gets
**401** with ``WWW-Authenticate: Bearer``; a known token whose role is too low gets **403**.
Both are the API's JSON error shape, ``{"error": {"code", "message"}}``. The identity a
route gets back is the token's *name*: it is the ``who`` of every write in the audit trail.

Tokens are never logged, echoed in an error or kept in an object's repr: refusals are
logged by the token's name, or not at all when the token is unknown; what libraries log of
request headers is redacted (``cloud_hub._auth_logs``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from fastapi import FastAPI, Request, Security, WebSocket
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cloud_hub._auth_logs import install_token_redaction
from cloud_hub._service import HubError
from cloud_hub._tokens import Role, TokenError, TokenInfo

__all__ = [
    "ACTION_ROLES",
    "AuthError",
    "Identity",
    "TokenChecker",
    "authorize",
    "authorize_websocket",
    "install_auth",
    "require",
    "role_for_action",
]


class TokenChecker(Protocol):
    """What checks a token: ``TokenStore`` (``None`` for unknown, malformed or revoked)."""

    def check(self, token: str) -> TokenInfo | None: ...

log = logging.getLogger("cloud_hub.auth")

# The least role for each edge command the API sends (docs/hub.md, "Auth"). An action not
# listed needs admin: a new command is closed until someone decides who may send it.
ACTION_ROLES: dict[str, Role] = {
    # viewers read; this one read is answered by the edge
    "list_checkpoints": Role.viewer,
    # supervisors act on what runs: hold it, let it go, settle conflicts, stop a zone
    "pause_workflow": Role.supervisor,
    "resume_workflow": Role.supervisor,
    "resolve_conflict": Role.supervisor,
    "sync_arrival": Role.supervisor,
    "facility_stop": Role.supervisor,
    "facility_release": Role.supervisor,
    "replay": Role.supervisor,
    # ... and lend agents and resources between facilities (``_bookings``)
    "lend_agent": Role.supervisor,
    "reclaim_agent": Role.supervisor,
    "lend_resource": Role.supervisor,
    "reclaim_resource": Role.supervisor,
    "release_booking": Role.supervisor,
    # planners change what runs: create, reshape, cancel, recover, act in bulk
    "create_workflow": Role.planner,
    "update_workflow": Role.planner,
    "cancel_workflow": Role.planner,
    "add_dependency": Role.planner,
    "set_coordination": Role.planner,
    "checkpoint": Role.planner,
    "recover": Role.planner,
    "operator_action": Role.planner,
    "batch": Role.planner,
    # the hub's own verdict on a cross-facility dependency; no route sends it for a user
    "resolve_dependency": Role.admin,
}


def role_for_action(action: str) -> Role:
    """The least role that may send edge command ``action`` (admin if unlisted)."""
    return ACTION_ROLES.get(action, Role.admin)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who made a request: the token's name and role (never the token)."""

    name: str
    role: Role
    token_id: str


class AuthError(HubError):
    """A refused request: 401 (no valid token) or 403 (role too low). A ``HubError`` so
    that a generic handler still answers it; ``install_auth``'s handler adds the
    ``WWW-Authenticate`` header."""

    def __init__(self, status: int, code: str, message: str, challenge: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.challenge = challenge


def _unauthorized(code: str, message: str, error: str | None = None) -> AuthError:
    challenge = 'Bearer realm="fleetflow"'
    if error is not None:
        challenge += f', error="{error}"'
    return AuthError(401, code, message, challenge)


def authorize(tokens: TokenChecker, token: str | None, minimum: Role | str) -> Identity:
    """The identity of ``token`` if its role is at least ``minimum``; else ``AuthError``
    (401 or 403). ``TokenError`` from an unreadable token file becomes a 503: fail closed."""
    need = Role.parse(minimum)
    if not token:
        raise _unauthorized("unauthorized",
                            "this endpoint needs a bearer token (Authorization: Bearer ff_...)")
    try:
        info = tokens.check(token)
    except TokenError:
        log.exception("cannot read the token file; refusing every request")
        raise AuthError(503, "auth_unavailable", "the hub cannot read its token file",
                        'Bearer realm="fleetflow"') from None
    if info is None:
        raise _unauthorized("unauthorized", "the bearer token is invalid or revoked",
                            "invalid_token")
    if not info.role.allows(need):
        log.info("refused %s (role %s): needs %s", info.name, info.role.name, need.name)
        raise AuthError(
            403, "forbidden",
            f"token {info.name!r} has role {info.role.name}; this needs {need.name} or above",
            f'Bearer realm="fleetflow", error="insufficient_scope", scope="{need.name}"')
    return Identity(info.name, info.role, info.id)


_bearer = HTTPBearer(
    auto_error=False, scheme_name="bearer",
    description="A hub token from `fleetflow hub token create --role ROLE` (ff_...).")


def require(role: Role | str) -> Callable[..., Awaitable[Identity]]:
    """A FastAPI dependency: the caller's ``Identity`` if its token's role is at least
    ``role``. Needs ``install_auth(app, tokens)`` on the app."""
    minimum = Role.parse(role)

    async def dependency(  # async: on the event loop, no thread-pool hop (_api_deps)
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(_bearer),  # noqa: B008
    ) -> Identity:
        token = credentials.credentials if credentials is not None else None
        return authorize(_tokens(request.app), token, minimum)

    dependency.__name__ = f"require_{minimum.name}"
    return dependency


async def authorize_websocket(websocket: WebSocket, role: Role | str) -> Identity | None:
    """Check a WebSocket's ``Authorization: Bearer`` header before accepting it. On
    refusal the handshake is closed with 1008 (policy violation, seen as HTTP 403 by the
    client) and ``None`` is returned. The token is never taken from the query string:
    servers log URLs."""
    header = websocket.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    try:
        return authorize(_tokens(websocket.app), token.strip() if scheme.lower() == "bearer"
                         else None, role)
    except AuthError as exc:
        await websocket.close(code=1008, reason=exc.code)
        return None


def install_auth(app: FastAPI, tokens: TokenChecker) -> None:
    """Give ``app`` its token checker (``app.state.auth``, where the API's own routes look
    too) and the handler that turns ``AuthError`` into the JSON error with its
    ``WWW-Authenticate`` challenge; and keep tokens out of this process's logs."""
    install_token_redaction()
    app.state.auth = tokens
    app.add_exception_handler(AuthError, _auth_error_response)  # type: ignore[arg-type]


async def _auth_error_response(request: Request, exc: AuthError) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": exc.code, "message": exc.message}},
        status_code=exc.status, headers={"WWW-Authenticate": exc.challenge})


def _tokens(app: object) -> TokenChecker:
    tokens = getattr(getattr(app, "state", None), "auth", None)
    if tokens is None or not callable(getattr(tokens, "check", None)):
        raise RuntimeError("install_auth(app, tokens) was not called on this app")
    checker: TokenChecker = tokens
    return checker
