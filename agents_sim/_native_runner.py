"""Run ``AgentBehaviour`` objects in real time over MQTT with paho-mqtt 2.x.

Two ways to connect, one worker thread either way:

* ``per_agent`` (default, faithful): one MQTT connection per agent, client id = agent id,
  optional per-agent credentials for a broker with ACLs, and the offline ``AgentConn`` as
  the connection's will — so an agent that dies mid-step makes the broker announce it.
* ``multiplexed`` (benchmarks): a few connections each speak for many agent ids. Only a
  broker without per-agent ACLs allows that, and there is no per-agent will: a dead agent
  just falls silent and the edge finds out from its liveness window.

paho callbacks never block: they put what arrived on a queue. The worker thread owns every
behaviour; it applies commands (``EventAck`` included), ticks whatever is due — resends of
unacknowledged events among it — and publishes the replies.

Every connection also subscribes to its facility's retained ``edge/status``: when the edge
is (or comes back) online, the agents of that connection resend every unacknowledged event
at once (docs/protocol.md, "Delivery").
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agents_sim._native_behaviour import AgentBehaviour
from agents_sim._native_spec import AgentSpec, Outgoing
from topics import (
    EventAck,
    ProtocolError,
    agent_topic,
    decode_agent_command,
    decode_edge_status,
    edge_topic,
    encode,
)

__all__ = ["Credentials", "FleetRunner", "mixed_fleet"]

Credentials = Callable[[str], "tuple[str, str] | None"]
"""agent id (or connection name in multiplexed mode) → (username, password), or None."""

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Item:
    """Something a paho callback hands the worker."""

    kind: Literal["cmd", "hello", "status"]
    name: str
    """The agent id (cmd, hello) or the connection name (status)."""
    payload: bytes = b""
    retained: bool = False
    """A retained message, as a (re)subscription delivers it."""


@dataclass(slots=True)
class _Conn:
    """One paho client and the agents it speaks for."""

    name: str
    client: mqtt.Client
    agents: list[str]
    subscribed: threading.Event
    alive: bool = True
    edge_online: bool = False
    """The edge's status as last heard on this connection (the worker's own)."""


class FleetRunner:
    """Host many simulated agents on a broker; ``start()``, then ``stop()`` (or ``kill``)."""

    def __init__(
        self,
        facility: str,
        specs: Iterable[AgentSpec],
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        mode: Literal["per_agent", "multiplexed"] = "per_agent",
        connections: int = 4,
        credentials: Credentials | None = None,
        keepalive: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.facility = facility
        """Facility whose topics the agents use."""
        self.behaviours: dict[str, AgentBehaviour] = {}
        """Every hosted agent by id. Owned by the worker thread while running."""
        self.errors: list[str] = []
        """Commands (and edge statuses) the agents could not decode, as sentences (they are
        otherwise ignored)."""
        self.incarnation: str = secrets.token_hex(3)
        """Part of every event id of this run, so a restarted fleet never repeats one."""
        self._status_topic = edge_topic(facility, "status")
        self._clock = clock
        self._host, self._port, self._keepalive = host, port, keepalive
        self._inbox: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._conns: list[_Conn] = []
        self._conn_of: dict[str, _Conn] = {}
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        now = clock()
        for spec in specs:
            if spec.agent_id in self.behaviours:
                raise ValueError(f"agent id {spec.agent_id!r} is used twice")
            agent_topic(facility, spec.agent_id, "cmd")  # refuses a bad id or facility now
            self.behaviours[spec.agent_id] = AgentBehaviour(spec, now, self.incarnation)
        ids = list(self.behaviours)
        if mode == "per_agent":
            groups = [(agent_id, [agent_id]) for agent_id in ids]
        elif mode == "multiplexed":
            n = max(1, min(connections, len(ids)))
            groups = [(f"{facility}-mux-{i}", ids[i::n]) for i in range(n)]
        else:
            raise ValueError(f"mode must be 'per_agent' or 'multiplexed', not {mode!r}")
        for name, agents in groups:
            login = credentials(name) if credentials else None
            self._conns.append(self._make_conn(name, agents, login, will=mode == "per_agent"))
        self._conn_named = {conn.name: conn for conn in self._conns}
        for conn in self._conns:
            for agent_id in conn.agents:
                self._conn_of[agent_id] = conn

    # --- lifecycle -----------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Connect everything and wait until every agent listens for commands."""
        self._worker = threading.Thread(target=self._work, name="fleet-worker", daemon=True)
        self._worker.start()
        for conn in self._conns:
            conn.client.connect_async(self._host, self._port, keepalive=self._keepalive)
            conn.client.loop_start()
        deadline = time.monotonic() + timeout
        for conn in self._conns:
            if not conn.subscribed.wait(max(0.0, deadline - time.monotonic())):
                self.stop()
                raise TimeoutError(
                    f"agent connection {conn.name!r} did not connect and subscribe to "
                    f"{self._host}:{self._port} within {timeout} s"
                )

    def stop(self) -> None:
        """Announce every live agent offline (retained) and disconnect cleanly."""
        self._inbox.put(None)
        if self._worker is not None:
            self._worker.join(timeout=5)
        now = self._clock()
        for conn in self._conns:
            if not conn.alive:
                continue
            infos = []
            for agent_id in conn.agents:
                behaviour = self.behaviours[agent_id]
                if not behaviour.dead and conn.client.is_connected():
                    infos.append(self._send(conn, agent_id, Outgoing(
                        "conn", behaviour.conn(False, now), qos=1, retain=True)))
            conn.alive = False
            for info in infos:
                if info is not None and info.rc == mqtt.MQTT_ERR_SUCCESS:
                    info.wait_for_publish(timeout=2)
            conn.client.disconnect()
            conn.client.loop_stop()

    def kill(self, agent_id: str) -> None:
        """Drop ``agent_id``'s connection without a DISCONNECT: the broker sends its will.

        In multiplexed mode this drops every agent on that connection (and no will exists).
        """
        conn = self._conn_of[agent_id]
        with self._lock:
            if not conn.alive:
                return
            conn.alive = False
        # Stop paho's thread first: it would otherwise reconnect the "dead" agent.
        conn.client.loop_stop()
        sock = conn.client.socket()
        if sock is not None:
            sock.close()

    def __enter__(self) -> FleetRunner:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- paho side (callbacks run on paho threads: only enqueue) ------------------------

    def _make_conn(
        self, name: str, agents: list[str], login: tuple[str, str] | None, will: bool
    ) -> _Conn:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        client.max_queued_messages_set(0)
        client.max_inflight_messages_set(1000)
        if login is not None:
            client.username_pw_set(*login)
        if will:
            offline = self.behaviours[agents[0]].conn(False, self._clock())
            client.will_set(agent_topic(self.facility, agents[0], "conn"),
                            encode(offline), qos=1, retain=True)
        conn = _Conn(name, client, agents, threading.Event())
        client.on_connect = self._on_connect_for(conn)
        client.on_subscribe = lambda *_a: conn.subscribed.set()
        client.on_message = self._on_message_for(conn)
        client.reconnect_delay_set(1, 2)
        return conn

    def _on_connect_for(self, conn: _Conn) -> Callable[..., None]:
        def on_connect(client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if reason.is_failure:
                return  # refused (bad credentials …): start() times out with a clear error
            client.subscribe([(agent_topic(self.facility, a, "cmd"), 1) for a in conn.agents]
                             + [(self._status_topic, 1)])
            for agent_id in conn.agents:
                self._inbox.put(_Item("hello", agent_id))
        return on_connect

    def _on_message_for(self, conn: _Conn) -> Callable[..., None]:
        def on_message(_client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
            if msg.topic == self._status_topic:
                self._inbox.put(_Item("status", conn.name, bytes(msg.payload), bool(msg.retain)))
                return
            parts = msg.topic.split("/")
            if len(parts) == 6:
                self._inbox.put(_Item("cmd", parts[4], bytes(msg.payload)))
        return on_message

    # --- worker --------------------------------------------------------------------------

    def _work(self) -> None:
        due: list[tuple[float, int, str]] = []
        planned: dict[str, float] = {}
        order = itertools.count()

        def plan(agent_id: str) -> None:
            at = self.behaviours[agent_id].next_wakeup()
            if at is not None and planned.get(agent_id) != at:
                planned[agent_id] = at
                heapq.heappush(due, (at, next(order), agent_id))

        while True:
            wait = max(0.0, due[0][0] - self._clock()) if due else 0.5
            try:
                item = self._inbox.get(timeout=min(wait, 0.5))
            except queue.Empty:
                now = self._clock()
            else:
                if item is None:
                    return
                now = self._clock()
                for agent_id in self._apply(item, now):
                    plan(agent_id)
            while due and due[0][0] <= now:
                at, _, agent_id = heapq.heappop(due)
                if planned.get(agent_id) != at:
                    continue  # superseded by a later plan
                del planned[agent_id]
                self._emit(agent_id, self.behaviours[agent_id].tick(now))
                plan(agent_id)

    def _apply(self, item: _Item, now: float) -> list[str]:
        """Hand ``item`` to the behaviours it concerns; returns their agent ids."""
        if item.kind == "status":
            return self._on_status(item, now)
        agent_id = item.name
        behaviour = self.behaviours.get(agent_id)
        if behaviour is None:
            return []
        if item.kind == "hello":
            self._emit(agent_id, behaviour.hello(now))
            return [agent_id]
        try:
            cmd = decode_agent_command(item.payload)
        except ProtocolError as exc:
            self.errors.append(f"{agent_id}: {exc.reason}: {exc.message}")
            return []
        if isinstance(cmd, EventAck) and cmd.refused:
            for event_id, reason in cmd.refused.items():
                _log.info("the edge refused event %s of %s: %s", event_id, agent_id, reason)
        self._emit(agent_id, behaviour.on_command(cmd, now))
        return [agent_id]

    def _on_status(self, item: _Item, now: float) -> list[str]:
        """The edge is online: the connection's agents resend what it has not acknowledged —
        when it comes back (offline → online) or the retained status arrives on a
        (re)subscription, not on every periodic online status."""
        conn = self._conn_named[item.name]
        try:
            online = decode_edge_status(item.payload).online
        except ProtocolError as exc:
            self.errors.append(f"edge status: {exc.reason}: {exc.message}")
            return []
        came_back = online and (item.retained or not conn.edge_online)
        conn.edge_online = online
        if not came_back:
            return []
        for agent_id in conn.agents:
            self._emit(agent_id, self.behaviours[agent_id].on_edge_online(now))
        return list(conn.agents)

    def _emit(self, agent_id: str, out: Sequence[Outgoing]) -> None:
        conn = self._conn_of[agent_id]
        for item in out:
            self._send(conn, agent_id, item)
        if self.behaviours[agent_id].dead and len(conn.agents) == 1:
            self.kill(agent_id)

    def _send(self, conn: _Conn, agent_id: str, item: Outgoing) -> mqtt.MQTTMessageInfo | None:
        if not conn.alive:
            return None
        topic = agent_topic(self.facility, agent_id, item.channel)
        return conn.client.publish(topic, encode(item.message), qos=item.qos, retain=item.retain)


_DEFAULT_CAPABILITIES: dict[str, tuple[str, ...]] = {
    "robot": ("camera", "pallet_jack", "shelf_lift", "tote_carrier"),
    "human": ("fitter", "picking", "rework"),
    "ai": ("defect_detection",),
}
"""``mixed_fleet``'s capabilities per kind: every one the shipped templates ask for
(tests/test_templates_fit.py keeps the two in step)."""


def mixed_fleet(
    n: int,
    *,
    prefix: str = "agent",
    kinds: Sequence[Literal["robot", "human", "ai"]] = ("robot", "robot", "human", "ai"),
    capabilities: dict[str, tuple[str, ...]] | None = None,
    **spec_args: Any,
) -> list[AgentSpec]:
    """``n`` agent specs cycling through ``kinds``, with default capabilities per kind:
    those the shipped templates (``templates/*.yaml``) ask for, so a default fleet can run
    every one of them.

    >>> [(s.agent_id, s.kind) for s in mixed_fleet(3, kinds=("robot", "ai"))]
    [('robot-1', 'robot'), ('ai-2', 'ai'), ('robot-3', 'robot')]
    """
    caps = capabilities or _DEFAULT_CAPABILITIES
    base_seed = int(spec_args.pop("seed", 0))
    specs = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        name = f"{kind}-{i + 1}" if prefix == "agent" else f"{prefix}-{i + 1}"
        specs.append(AgentSpec(
            agent_id=name, kind=kind, capabilities=caps.get(kind, ()), seed=base_seed + i,
            **spec_args,
        ))
    return specs
