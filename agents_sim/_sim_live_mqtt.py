"""The MQTT side of the simulator's live mode: one paho connection per simulated agent.

``AgentConnection`` is an agent's link to a real broker, as a native agent has it
(docs/agents-native.md): client id = the agent id (plus a run tag), the offline
``AgentConn`` as its will, subscribed to its ``cmd`` topic and its edge's retained
``edge/status``. paho's callbacks only put what arrives on the run's ``queue.Queue`` —
SimPy is not thread-safe; a pump process of the run drains it. ``publish`` is called from
the SimPy thread (paho's publish is thread-safe). ``kill`` drops the socket without a
DISCONNECT, so the broker publishes the will (an agent failure, a network drop).

``FleetRunner`` (agents_sim._native_runner) is not reused: its worker thread owns and ticks
the behaviours in wall time, while here the SimPy processes (``SimAgent``) own them.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
from dataclasses import dataclass
from typing import Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agents_sim._native_spec import Outgoing
from topics import AgentConn, agent_topic, edge_topic, encode

__all__ = ["AgentConnection", "Connection", "Inbound", "Login"]

Login = tuple[str, str | None] | None
"""(username, password) for every connection of a live run, or None (anonymous)."""


@dataclass(frozen=True, slots=True)
class Inbound:
    """Something that arrived for an agent (put on the run's queue by a paho thread)."""

    facility: str
    agent_id: str
    kind: Literal["cmd", "status"]
    payload: bytes
    retained: bool = False


class Connection:
    """One simulated party's paho connection: the will, ``connect()``, ``kill``/``close``.

    Subclasses say what it reads (``subscriptions``) and what arrives (``_on_message``)."""

    def __init__(self, client_id: str, *, host: str, port: int, login: Login,
                 will: tuple[str, bytes], label: str, keepalive: int = 5) -> None:
        self.alive = False
        """Connected and not killed: only then does ``publish`` send anything."""
        self._host, self._port, self._keepalive, self._label = host, port, keepalive, label
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv311, clean_session=True)
        self.client.max_queued_messages_set(0)
        if login is not None:
            self.client.username_pw_set(*login)
        self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)

    def subscriptions(self) -> list[tuple[str, int]]:
        """(topic, QoS) it reads, subscribed on every connect."""
        raise NotImplementedError

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        raise NotImplementedError

    def connect(self, timeout: float) -> None:
        """Connect and subscribe; ``TimeoutError`` naming the broker if that takes longer."""
        self.client.connect_async(self._host, self._port, keepalive=self._keepalive)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            self._leave(None)
            raise TimeoutError(f"{self._label} did not connect and subscribe to "
                               f"{self._host}:{self._port} within {timeout} s")
        self.alive = True

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object,
                    _p: object) -> None:
        if getattr(reason, "is_failure", False):
            return  # refused (bad credentials …): connect() times out naming the broker
        client.subscribe(self.subscriptions())

    def kill(self) -> None:
        """Drop the connection without a DISCONNECT: the broker publishes the will.

        Returns at once (nothing is sent from then on): the socket is shut down here and
        paho's loop, told not to reconnect, is stopped by a helper thread — stopping it
        waits up to a second, and in the simulation's thread killing many agents at one
        moment would stall every other agent long enough for its edge to lose it."""
        if not self.alive:
            return
        self.alive = False
        self.client.reconnect_delay_set(3600, 3600)  # paho's thread must not reconnect
        sock = self.client.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):  # not close(): paho's thread still uses it
                sock.shutdown(socket.SHUT_RDWR)
        threading.Thread(target=self.client.loop_stop, name=f"kill-{self._label}",
                         daemon=True).start()

    def _leave(self, last: tuple[str, bytes] | None) -> None:
        """Disconnect cleanly, after publishing ``last`` (topic, payload: retained, QoS 1)."""
        if self.alive and last is not None:
            info = self.client.publish(last[0], last[1], qos=1, retain=True)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                info.wait_for_publish(timeout=2)
        self.alive = False
        self.client.disconnect()
        self.client.loop_stop()


class AgentConnection(Connection):
    """One agent's MQTT connection; ``connect()``, then ``publish``; ``kill`` or ``close``."""

    def __init__(self, facility: str, agent_id: str, inbox: queue.Queue[Inbound], *,
                 host: str, port: int, login: Login, will: AgentConn, tag: str,
                 keepalive: int = 5) -> None:
        self.facility = facility
        self.agent_id = agent_id
        self._inbox = inbox
        self._cmd = agent_topic(facility, agent_id, "cmd")
        self._status = edge_topic(facility, "status")
        super().__init__(f"{agent_id}-{tag}", host=host, port=port, login=login,
                         will=(agent_topic(facility, agent_id, "conn"), encode(will)),
                         label=f"agent {agent_id}", keepalive=keepalive)

    def subscriptions(self) -> list[tuple[str, int]]:
        """Its ``cmd`` topic and its edge's retained ``edge/status``."""
        return [(self._cmd, 1), (self._status, 1)]

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        kind: Literal["cmd", "status"] = "status" if msg.topic == self._status else "cmd"
        self._inbox.put(Inbound(self.facility, self.agent_id, kind, bytes(msg.payload),
                                bool(msg.retain)))

    def publish(self, item: Outgoing) -> bool:
        """Send one of the agent's messages; False if the connection is down."""
        if not self.alive:
            return False
        topic = agent_topic(self.facility, self.agent_id, item.channel)
        info = self.client.publish(topic, encode(item.message), qos=item.qos,
                                   retain=item.retain)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def close(self, last: AgentConn | None = None) -> None:
        """Disconnect cleanly, after publishing ``last`` (the retained offline conn)."""
        self._leave(None if last is None else
                    (agent_topic(self.facility, self.agent_id, "conn"), encode(last)))
