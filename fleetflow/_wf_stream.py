"""Following the hub's live stream (``/ws/workflows``) for ``fleetflow wf watch`` and for
``fleetflow up``'s event lines.

``follow`` connects with the bearer token in the ``Authorization`` header, hands every
``ChangeOut`` (``{token, event}``) to a callback, and reconnects with the last token it
saw when the stream drops (the hub then sends what was missed: nothing lost, nothing
twice). Only what the user must fix ends it with a ``CliError``: a refused token, a
refused filter, or no hub at all on the first try.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from fleetflow._errors import CliError

__all__ = ["Follow", "follow", "wait_seconds"]

Follow = Callable[[dict[str, Any]], bool]
"""Called with each change; returning ``True`` ends the stream."""


def _query(facility: str | None, workflow_id: str | None, since: str | None) -> str:
    params = {k: v for k, v in (("facility", facility), ("workflow_id", workflow_id),
                                ("since", since)) if v is not None}
    return f"?{urlencode(params)}" if params else ""


def follow(ws_url: str, token: str, on_change: Follow, *, facility: str | None = None,
           workflow_id: str | None = None, since: str | None = None,
           stop: threading.Event | None = None,
           on_reconnect: Callable[[str], None] | None = None) -> None:
    """Stream changes into ``on_change`` until it returns ``True`` or ``stop`` is set.
    ``on_reconnect(why)`` is told each time the stream dropped and is being resumed."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
    from websockets.sync.client import connect

    stop = stop or threading.Event()
    headers = {"Authorization": f"Bearer {token}"}
    last, connected_once, backoff = since, False, 0.5
    while not stop.is_set():
        url = ws_url + _query(facility, workflow_id, last)
        try:
            with connect(url, additional_headers=headers, open_timeout=10, proxy=None,
                         max_size=2**24) as ws:
                connected_once, backoff = True, 0.5
                while not stop.is_set():
                    try:
                        raw = ws.recv(timeout=0.5)
                    except TimeoutError:
                        continue
                    msg = json.loads(raw)
                    if isinstance(msg, dict) and "error" in msg:
                        err = msg["error"] if isinstance(msg["error"], dict) else {}
                        if err.get("code") == "validation_error":
                            raise CliError(f"the hub refused the stream: {err.get('message')}")
                        continue  # e.g. too far behind: the close follows, then a resume
                    if isinstance(msg, dict) and isinstance(msg.get("event"), dict):
                        last = str(msg.get("token") or last or "") or None
                        if on_change(msg):
                            return
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise CliError(f"token refused by the live stream {ws_url} (HTTP {status}); "
                               "pass a valid --token or --token-file") from None
            why = f"HTTP {status}"
        except ConnectionClosed as exc:
            why = f"closed ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
        except (OSError, WebSocketException, TimeoutError) as exc:
            if not connected_once:
                raise CliError(f"no hub at {ws_url} ({type(exc).__name__}): start it with "
                               "`fleetflow up` or pass --api") from None
            why = f"{type(exc).__name__}: {exc}"
        if stop.is_set():
            return
        if on_reconnect is not None:
            on_reconnect(why)
        stop.wait(backoff)
        backoff = min(backoff * 2, 10.0)


def wait_seconds(seconds: float | None) -> threading.Event:
    """An event set after ``seconds`` (never, for ``None``): ``watch --for``."""
    done = threading.Event()
    if seconds is not None:
        timer = threading.Timer(max(seconds, 0.0), done.set)
        timer.daemon = True
        timer.start()
    return done
