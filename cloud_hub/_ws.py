"""``/ws/workflows``: the hub's change feed, live, as ``ChangeOut`` JSON messages.

``?facility=&workflow_id=`` filter it; ``?since=TOKEN`` (the last token a client saw) first
replays what it missed from ``service.changes``, so a client that reconnects loses nothing.
The stream subscribes *before* it reads that backlog and drops live changes the backlog
already sent, so nothing falls between the two either.

The hub calls the listener on its own thread: the listener only filters and hands the change
to the event loop (``call_soon_threadsafe``), never blocks or raises there. A client that
falls more than ``MAX_QUEUED`` changes behind is closed (code 4008) and reconnects with its
last token rather than make the hub buffer without bound.

Authentication: ``Authorization: Bearer <token>`` of any role (``_auth``); a handshake
without one is closed with 1008 before it is accepted (HTTP 403 to the client). Bad
parameters: an error message, then close code 4400.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from cloud_hub._api_bodies import check_id
from cloud_hub._auth import authorize_websocket
from cloud_hub._model import ChangeOut
from cloud_hub._service import HubError, HubService
from cloud_hub._tokens import Role

__all__ = ["MAX_QUEUED", "router"]

log = logging.getLogger("cloud_hub.ws")
router = APIRouter()
MAX_QUEUED = 10_000
_BACKLOG_PAGE = 500


async def _refuse(ws: WebSocket, code: int, error: str, message: str) -> None:
    await ws.accept()
    await ws.send_json({"error": {"code": error, "message": message}})
    await ws.close(code=code, reason=error)


def _params(ws: WebSocket) -> dict[str, str | None]:
    """``facility``, ``workflow_id`` and ``since``, checked (``ValueError`` naming one)."""
    out: dict[str, str | None] = {}
    for name in ("facility", "workflow_id"):
        value = ws.query_params.get(name)
        if value is not None:
            try:
                check_id(value)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        out[name] = value
    since = ws.query_params.get("since")
    if since is not None and not 0 < len(since) <= 256:
        raise ValueError("since: must be 1 to 256 characters")
    out["since"] = since
    return out


@router.websocket("/ws/workflows")
async def stream(ws: WebSocket) -> None:
    """Every change of the hub's view (filtered), resumable by token."""
    if await authorize_websocket(ws, Role.viewer) is None:
        return  # closed with 1008 (HTTP 403 to the client), nothing accepted
    try:
        params = _params(ws)
    except ValueError as exc:
        await _refuse(ws, 4400, "validation_error", str(exc))
        return
    service: HubService = ws.app.state.hub
    await ws.accept()
    ws.app.state.metrics.websockets.inc()
    try:
        await _serve(ws, service, params)
    finally:
        ws.app.state.metrics.websockets.dec()


def _matches(change: ChangeOut, facility: str | None, workflow_id: str | None) -> bool:
    event = change.event
    return ((facility is None or event.facility == facility)
            and (workflow_id is None or event.workflow_id == workflow_id))


async def _serve(ws: WebSocket, service: HubService, params: dict[str, str | None]) -> None:
    facility, workflow_id, since = params["facility"], params["workflow_id"], params["since"]
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[ChangeOut | None] = asyncio.Queue()

    def put(change: ChangeOut | None) -> None:  # on the loop
        if queue.qsize() >= MAX_QUEUED:
            change = None  # the reader closes the stream on it
        queue.put_nowait(change)

    def listener(change: ChangeOut) -> None:  # on the hub's thread: never block, never raise
        try:
            if _matches(change, facility, workflow_id):
                loop.call_soon_threadsafe(put, change)
        except RuntimeError:  # the loop closed: the stream is gone
            pass

    unsubscribe = service.subscribe(listener)
    try:
        sent = await _backlog(ws, service, since, facility, workflow_id)
        if sent is None:
            return
        reader = asyncio.create_task(_drain_client(ws))
        writer = asyncio.create_task(_forward(ws, queue, sent))
        done, pending = await asyncio.wait({reader, writer},
                                           return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await task
        for task in done:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                task.result()
    except WebSocketDisconnect:
        pass
    finally:
        unsubscribe()


async def _backlog(ws: WebSocket, service: HubService, since: str | None,
                   facility: str | None, workflow_id: str | None) -> set[str] | None:
    """Send what came after ``since``; the tokens sent (``None``: refused, closed)."""
    sent: set[str] = set()
    if since is None:
        return sent
    while True:
        try:
            page: list[ChangeOut] = await run_in_threadpool(
                service.changes, since, facility=facility, workflow_id=workflow_id,
                limit=_BACKLOG_PAGE)
        except HubError as exc:
            await ws.send_json({"error": {"code": exc.code, "message": exc.message}})
            await ws.close(code=4400, reason=exc.code)
            return None
        for change in page:
            await ws.send_text(change.model_dump_json())
            sent.add(change.token)
        if len(page) < _BACKLOG_PAGE:
            return sent
        since = page[-1].token


async def _forward(ws: WebSocket, queue: asyncio.Queue[ChangeOut | None],
                   already: set[str]) -> None:
    while True:
        change = await queue.get()
        if change is None:
            await ws.send_json({"error": {"code": "lagging", "message": (
                f"more than {MAX_QUEUED} changes unsent: reconnect with the last token "
                "as since")}})
            await ws.close(code=4008, reason="lagging")
            return
        if change.token in already:
            already.discard(change.token)
            continue
        await ws.send_text(change.model_dump_json())


async def _drain_client(ws: WebSocket) -> Any:
    """Read (and ignore) what the client sends, until it goes away."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return None
