"""Every error the REST API returns has one JSON shape, ``{"error": {"code", "message"}}``,
whatever raised it: a ``HubError`` of the hub, a request that fails validation (422, naming
the field path), a missing route, or a bad token. Clients branch on ``code``, people read
``message``; nothing else (no stack trace, no token) leaks out."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud_hub._service import HubError

__all__ = ["ApiError", "ErrorBody", "ErrorOut", "error_responses", "install_error_handlers"]

log = logging.getLogger("cloud_hub.api")

_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media",
    422: "validation_error", 501: "not_implemented", 503: "unavailable",
}


class ErrorBody(BaseModel):
    """What went wrong: ``code`` for programs, ``message`` (one sentence) for people."""

    code: str
    message: str
    command_id: str | None = None
    """The edge command concerned (a refused or undelivered write)."""
    fields: list[str] | None = None
    """Validation errors: the path of each bad field (``body.priority``)."""


class ErrorOut(BaseModel):
    """The body of every error response."""

    error: ErrorBody


class ApiError(Exception):
    """An error the API itself raises (not the hub's): a status, a code and a sentence."""

    def __init__(self, status: int, code: str, message: str, *,
                 command_id: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.command_id = command_id
        self.headers = headers


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting ``statuses`` with the error model."""
    return {s: {"model": ErrorOut, "description": _HTTP_CODES.get(s, "error")}
            for s in statuses}


def _json(status: int, body: ErrorBody, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorOut(error=body).model_dump(exclude_none=True), status_code=status,
                        headers=headers)


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc) or "request"


async def _on_hub_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HubError)
    return _json(exc.status, ErrorBody(code=exc.code, message=exc.message))


async def _on_api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _json(exc.status, ErrorBody(code=exc.code, message=exc.message,
                                       command_id=exc.command_id), exc.headers)


async def _on_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    fields = [_field_path(e.get("loc", ())) for e in errors]
    first = errors[0] if errors else {"msg": "invalid request"}
    where = fields[0] if fields else "request"
    message = f"{where}: {first.get('msg', 'invalid')}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return _json(422, ErrorBody(code="validation_error", message=message, fields=fields))


async def _on_http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return _json(exc.status_code, ErrorBody(code=code, message=message),
                 dict(exc.headers) if exc.headers else None)


async def _on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error in the API: %s", type(exc).__name__, exc_info=exc)
    return _json(500, ErrorBody(code="internal", message="the hub failed to serve this request"))


def install_error_handlers(app: FastAPI) -> None:
    """Route every kind of failure to the one JSON error shape."""
    app.add_exception_handler(HubError, _on_hub_error)
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
