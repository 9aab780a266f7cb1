"""The hub's half of hub → edge delivery (docs/protocol.md, "Delivery"), over paho.

``HubClient`` sends ``HubCommand`` s on ``edge/cmd`` and keeps each in a per-facility
``Outbox`` until the edge's ``command_reply`` event carrying its id shows up on
``edge/events`` — or an ``edge/errors`` report that names the command id refuses it. Until
then it resends with backoff (1 s, doubling to 30 s), and all at once when the edge's
retained ``edge/status`` turns online. ``send`` returns a ``Future`` of the reply event;
``command`` waits for it, which is what tests and the demo planner need.

Like the simulated agents' runner: paho callbacks only queue what arrives; one worker thread
owns the outboxes, publishes, resends and settles the futures.
"""

from __future__ import annotations

import collections
import queue
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agents_sim._outbox import Outbox
from topics import (
    EdgeEvent,
    EdgeTopic,
    ErrorReport,
    HubCommand,
    ProtocolError,
    decode_edge_event,
    decode_edge_status,
    decode_error_report,
    edge_topic,
    encode,
    parse_topic,
)

__all__ = ["HubClient", "HubCommandRefused", "HubStats"]

_PUNCTUATION = "'\"()[]{}<>,;:.!?"
"""Stripped from the words of an error report before looking for a command id in them."""
_KEPT_REPORTS = 100
"""How many ``edge/errors`` reports a client keeps (``HubClient.reports``)."""


class HubCommandRefused(Exception):
    """The edge refused a hub command: its ``edge/errors`` report named the command id."""

    def __init__(self, command_id: str, report: ErrorReport) -> None:
        super().__init__(f"the edge refused hub command {command_id}: {report.reason}: "
                         f"{report.message}")
        self.command_id = command_id
        self.report = report


@dataclass(frozen=True, slots=True)
class _Item:
    """Something a paho callback (or ``send``) hands the worker."""

    kind: Literal["send", "ready", "down", "message"]
    facility: str = ""
    command: HubCommand | None = None
    topic: str = ""
    payload: bytes = b""
    retained: bool = False


@dataclass(slots=True)
class HubStats:
    """What a ``HubClient`` did."""

    sent: int = 0
    """Commands sent for the first time."""
    resent: int = 0
    """Sends of a command again (backoff, reconnect, or the edge back online)."""
    replied: int = 0
    """Commands settled by their ``command_reply``."""
    refused: int = 0
    """Commands settled by an ``edge/errors`` report naming them."""


class HubClient:
    """Reliable hub commands to the edges of ``facilities``; ``start()``, then ``stop()``."""

    def __init__(
        self,
        host: str,
        port: int,
        facilities: Sequence[str],
        *,
        username: str | None = "hub",
        password: str | None = None,
        client_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.facilities: tuple[str, ...] = tuple(facilities)
        """The edges this client talks to."""
        self.reports: collections.deque[ErrorReport] = collections.deque(maxlen=_KEPT_REPORTS)
        """The latest ``edge/errors`` reports heard."""
        self.stats = HubStats()
        self._host, self._port, self._clock = host, port, clock
        self._boxes: dict[str, Outbox[str, bytes]] = {f: Outbox() for f in self.facilities}
        self._edge_online = dict.fromkeys(self.facilities, False)
        self._futures: dict[tuple[str, str], Future[EdgeEvent]] = {}
        self._lock = threading.Lock()  # guards _futures (send runs on the caller's thread)
        self._inbox: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._live = False  # subscribed, so replies are heard: the worker's own
        self._worker: threading.Thread | None = None
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311,
                                   client_id=client_id or f"hub-{secrets.token_hex(3)}")
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.max_inflight_messages_set(0)  # 0 = unlimited: never hold a resend back
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *_a: self._inbox.put(_Item("ready"))
        self._client.on_disconnect = lambda *_a: self._inbox.put(_Item("down"))
        self._client.on_message = self._on_message

    # --- lifecycle -----------------------------------------------------------------------

    def start(self, timeout: float | None = 10.0) -> HubClient:
        """Connect and subscribe; wait up to ``timeout`` s for that (``None``: do not wait —
        commands sent meanwhile go out once the subscription stands)."""
        self._worker = threading.Thread(target=self._work, name="hub-client", daemon=True)
        self._worker.start()
        self._client.connect_async(self._host, self._port)
        self._client.loop_start()
        if timeout is not None and not self._ready.wait(timeout):
            self.stop()
            raise TimeoutError(f"hub client did not connect and subscribe to "
                               f"{self._host}:{self._port} within {timeout} s")
        return self

    def stop(self) -> None:
        """Stop resending, disconnect, and cancel every command still waiting."""
        self._inbox.put(None)
        if self._worker is not None:
            self._worker.join(timeout=5)
        self._client.disconnect()
        self._client.loop_stop()
        with self._lock:
            futures, self._futures = list(self._futures.values()), {}
        for future in futures:
            future.cancel()

    def __enter__(self) -> HubClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- sending -------------------------------------------------------------------------

    def send(self, facility: str, command: HubCommand) -> Future[EdgeEvent]:
        """Send ``command`` to ``facility``'s edge until it is answered. The future gives
        the ``command_reply`` event, or raises ``HubCommandRefused``. Sending a command id
        that is still waiting returns its future and sends nothing new."""
        if facility not in self._boxes:
            raise ValueError(f"facility {facility!r} is not one of {self.facilities}")
        if command.action == "replay":
            raise ValueError("replay is answered by re-published events, not by a "
                             "command_reply: publish it directly")
        key = (facility, command.command_id)
        with self._lock:
            future = self._futures.get(key)
            if future is not None:
                return future
            future = self._futures[key] = Future()
        self._inbox.put(_Item("send", facility, command))
        return future

    def command(self, facility: str, action: str, args: dict[str, Any] | None = None, *,
                command_id: str | None = None, timeout: float = 10.0) -> EdgeEvent:
        """Send a hub command and wait for the edge's ``command_reply`` event.

        Raises ``HubCommandRefused`` if the edge reported the command refused, and
        ``TimeoutError`` (naming the latest error reports) if no answer came in time; the
        command is still resent after a timeout."""
        cmd = HubCommand(command_id=command_id or f"hub-{secrets.token_hex(6)}",
                         action=action, args=args or {}, ts=self._clock())  # type: ignore[arg-type]
        future = self.send(facility, cmd)
        try:
            return future.result(timeout)
        except TimeoutError:
            seen = [f"{r.reason}: {r.message}" for r in list(self.reports)[-3:]]
            raise TimeoutError(f"no reply to hub command {cmd.command_id} ({action}) from "
                               f"{facility!r} within {timeout} s; latest edge errors: "
                               f"{seen or 'none'}") from None

    def pending(self) -> int:
        """Commands sent and not answered yet."""
        with self._lock:
            return len(self._futures)

    # --- paho side (callbacks: only enqueue) ---------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            return  # refused (bad credentials …): start() times out with a clear error
        client.subscribe([(edge_topic(f, k), 1) for f in self.facilities
                          for k in ("events", "status", "errors")])

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._inbox.put(_Item("message", topic=msg.topic, payload=bytes(msg.payload),
                              retained=bool(msg.retain)))

    # --- worker --------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            dues = [d for box in self._boxes.values() if (d := box.next_due()) is not None]
            wait = max(0.0, min(dues) - self._clock()) if dues else 0.5
            try:
                item = self._inbox.get(timeout=min(wait, 0.5))
            except queue.Empty:  # nothing arrived: only resends are due
                self._resend_due(self._clock())
                continue
            if item is None:
                return
            self._handle(item, self._clock())
            self._resend_due(self._clock())

    def _handle(self, item: _Item, now: float) -> None:
        if item.kind == "send":
            assert item.command is not None
            self._first_send(item.facility, item.command, now)
        elif item.kind == "ready":
            self._live = True
            self._ready.set()
            for facility in self.facilities:  # anything sent before, or lost in a reconnect
                self._publish(facility, self._boxes[facility].resend_all(now), resend=True)
        elif item.kind == "down":
            self._live = False
        else:
            self._on_edge_message(item, now)

    def _first_send(self, facility: str, command: HubCommand, now: float) -> None:
        payload = encode(command)
        box = self._boxes[facility]
        for old_id, _ in box.keep(command.command_id, payload, now):
            self._settle(facility, old_id, error=OverflowError(
                f"hub command {old_id} dropped unanswered: {box.limit} commands waited"))
        self.stats.sent += 1
        self._publish(facility, [payload], resend=False)

    def _resend_due(self, now: float) -> None:
        for facility, box in self._boxes.items():
            self._publish(facility, box.due(now), resend=True)

    def _publish(self, facility: str, payloads: list[bytes], *, resend: bool) -> None:
        if not self._live:
            return  # kept: everything is sent again once the subscription stands
        topic = edge_topic(facility, "cmd")
        for payload in payloads:
            self._client.publish(topic, payload, qos=1)
        if resend:
            self.stats.resent += len(payloads)

    def _on_edge_message(self, item: _Item, now: float) -> None:
        try:
            where = parse_topic(item.topic)
            if not isinstance(where, EdgeTopic) or where.facility not in self._boxes:
                return
            facility = where.facility
            if where.kind == "events":
                event = decode_edge_event(item.payload)
                if event.kind == "command_reply" and isinstance(event.data.get("cmd"), str):
                    self._on_reply(facility, event)
            elif where.kind == "status":
                online = decode_edge_status(item.payload).online
                came_back = online and (item.retained or not self._edge_online[facility])
                self._edge_online[facility] = online
                if came_back:
                    self._publish(facility, self._boxes[facility].resend_all(now), resend=True)
            elif where.kind == "errors":
                self._on_report(facility, decode_error_report(item.payload))
        except ProtocolError:
            pass  # not something we can read; the edge's own reports cover it

    def _on_reply(self, facility: str, event: EdgeEvent) -> None:
        command_id: str = event.data["cmd"]
        result = event.data.get("result")
        if isinstance(result, dict) and isinstance(result.get("refused"), str):
            # Refused in the log (a stale command: the conflict it raised is an event too).
            report = ErrorReport(reason=result["refused"], command_id=command_id,
                                 message=str(result.get("error", ""))[:1024],
                                 topic=edge_topic(facility, "cmd"), ts=(event.hlc >> 16) / 1000)
            self._settle(facility, command_id, error=HubCommandRefused(command_id, report))
        else:
            self._settle(facility, command_id, reply=event)

    def _on_report(self, facility: str, report: ErrorReport) -> None:
        self.reports.append(report)
        if report.topic != edge_topic(facility, "cmd"):
            return
        if report.command_id is not None:
            if report.command_id in self._boxes[facility].ids():
                self._settle(facility, report.command_id,
                             error=HubCommandRefused(report.command_id, report))
            return
        # An edge of an older build names no command id: a report settles a command only
        # when its message names the id as a word of its own (punctuation around it aside).
        words = {w.strip(_PUNCTUATION) for w in report.message.split()}
        for command_id in self._boxes[facility].ids():
            if command_id in words:
                self._settle(facility, command_id, error=HubCommandRefused(command_id, report))

    def _settle(self, facility: str, command_id: str, *, reply: EdgeEvent | None = None,
                error: Exception | None = None) -> None:
        self._boxes[facility].ack(command_id)
        with self._lock:
            future = self._futures.pop((facility, command_id), None)
        if future is None or future.done():
            return
        if reply is not None:
            self.stats.replied += 1
            future.set_result(reply)
        elif error is not None:
            if isinstance(error, HubCommandRefused):
                self.stats.refused += 1
            future.set_exception(error)
