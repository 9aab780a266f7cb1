"""The change feed, live and polled, against the real stack: the WebSocket streams what
happens, filtered; a client that reconnects with its last token misses nothing; polling
``GET /api/v1/events`` serves the same entries; a handshake without a token is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hub_stack import Stack, create, run_stack
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.sync.connection import Connection

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[Stack]:
    """One stack for the module's tests."""
    yield from run_stack(tmp_path_factory.mktemp("hubws"), mosquitto_bin)


def _ws(stack: Stack, role: str | None = "viewer", **params: str) -> ClientConnection:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    headers = {} if role is None else {"Authorization": f"Bearer {stack.tokens[role]}"}
    return connect(f"{stack.url.replace('http', 'ws')}/ws/workflows?{query}",
                   additional_headers=headers, open_timeout=10)


def _until_created(ws: Connection, wid: str) -> list[dict[str, Any]]:
    """Changes received until ``wid``'s workflow_created (all of them, in order)."""
    seen: list[dict[str, Any]] = []
    while True:
        change = json.loads(ws.recv(timeout=15))
        seen.append(change)
        if change["event"]["workflow_id"] == wid and change["event"]["kind"] == \
                "workflow_created":
            return seen


def test_stream_is_live_and_filtered(stack: Stack) -> None:
    """A stream filtered to fb sees fb's new workflow, and nothing of fa."""
    with _ws(stack, facility="fb") as ws, stack.client("planner") as c:
        create(c, "fa")
        wid = create(c, "fb")
        seen = _until_created(ws, wid)
    assert {s["event"]["facility"] for s in seen} == {"fb"}
    assert all(s["token"] for s in seen)


def test_reconnect_with_since_misses_nothing(stack: Stack) -> None:
    """Changes made while a client was away arrive first when it reconnects with its last
    token, in order, and the same entries are served to a polling client."""
    with _ws(stack, facility="fb") as ws, stack.client("planner") as c:
        first = create(c, "fb")
        last = _until_created(ws, first)[-1]["token"]
    with stack.client("planner") as c:
        missed = create(c, "fb")
        polled = c.get("/api/v1/events", params={"since": last, "facility": "fb"}).json()
    with _ws(stack, facility="fb", since=last) as ws:
        replayed = _until_created(ws, missed)
    tokens = [r["token"] for r in replayed]
    assert tokens == sorted(tokens) and last not in tokens
    assert [p["token"] for p in polled["items"]][:len(tokens)] == tokens
    assert polled["next"] == polled["items"][-1]["token"]


def test_poll_filters_by_workflow(stack: Stack) -> None:
    """GET /api/v1/events?workflow_id= returns that workflow's changes only."""
    with stack.client("planner") as c:
        wid = create(c, "fa")
        got = c.get("/api/v1/events", params={"workflow_id": wid}).json()
    assert got["items"] and {i["event"]["workflow_id"] for i in got["items"]} == {wid}
    assert got["items"][0]["event"]["kind"] == "workflow_created"


def test_handshake_without_token_is_refused(stack: Stack) -> None:
    """No token: the handshake is refused (HTTP 403), nothing is streamed."""
    with pytest.raises(InvalidStatus) as refused:
        _ws(stack, role=None)
    assert refused.value.response.status_code == 403


def test_bad_filter_is_an_error_then_close(stack: Stack) -> None:
    """A facility that is not an identifier: one error message naming it, then close 4400."""
    with _ws(stack, facility="a+b") as ws:
        message = json.loads(ws.recv(timeout=10))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert message["error"]["code"] == "validation_error" and "facility" in message["error"][
        "message"]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400


def test_bad_since_token_is_an_error(stack: Stack) -> None:
    """A resume token the hub never gave out: an error message, then close."""
    with _ws(stack, since="not-a-token") as ws:
        message = json.loads(ws.recv(timeout=10))
    assert message["error"]["code"] == "hub_error"
