"""VDA 5050 robots in the simulator's live mode: the same ``SimVdaRobot`` s as the virtual
mode, each with its own paho connection on ``uagv/v2/{manufacturer}/{serial}/…``.

A robot's connection is a VDA 5050 AGV's, as ``agents_sim.vda_agv`` has it: the will is
its ``connection`` CONNECTIONBROKEN (retained, QoS 1); ``connection`` and ``factsheet`` are
published retained; it reads ``order`` and ``instantActions``. The edge must run its VDA
master (``fleetflow edge --vda``, with the scenario's map, and ``--vda-capabilities``
covering the VDA fleet entries' capabilities: the shell announces every AGV with that one
list). paho's threads only queue what arrives; a pump process of the run hands it to the
robots in the SimPy thread. Faults: ``agent_failure`` and ``network_drop`` drop the
connection without a DISCONNECT (the broker publishes the will); after ``duration_s`` the
robot connects again (repaired: a rebooted AGV) and announces itself ONLINE.
"""

from __future__ import annotations

import queue
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import simpy

from agents_sim._sim_agent import SimLink
from agents_sim._sim_live_mqtt import Connection, Login
from agents_sim._sim_scenario import FacilitySpec, Fault
from agents_sim._sim_vda import READS, SimVdaRobot, vda_model
from topics import VdaKind, encode_vda, vda_topic

__all__ = ["AgvConnection", "AgvInbound", "LiveVda"]

RECONNECTED = "reconnected"
"""The ``AgvInbound`` kind of a connection paho made again on its own (not a message)."""



@dataclass(frozen=True, slots=True)
class AgvInbound:
    """A message of the edge's master for an AGV (queued by a paho thread)."""

    serial: str
    kind: str
    payload: bytes


class AgvConnection(Connection):
    """One VDA 5050 robot's MQTT connection; ``connect()``, ``publish``, ``kill``/``close``."""

    def __init__(self, robot: SimVdaRobot, inbox: queue.Queue[AgvInbound], *, host: str,
                 port: int, login: Login, tag: str, keepalive: int = 5) -> None:
        self.robot = robot
        m = robot.model
        self._topics = {kind: vda_topic(m.manufacturer, robot.agent_id, kind)
                        for kind in ("order", "instantActions", "state", "connection",
                                     "factsheet", "visualization")}
        self._inbox = inbox
        self._connects = 0
        _, will = robot.agv.connection("CONNECTIONBROKEN", robot.now)
        super().__init__(f"{m.manufacturer}.{robot.agent_id}-{tag}", host=host, port=port,
                         login=login,
                         will=(self._topics["connection"], encode_vda(will, "connection")),
                         label=f"AGV {robot.agent_id}", keepalive=keepalive)

    def subscriptions(self) -> list[tuple[str, int]]:
        """Its ``order`` and ``instantActions`` topics."""
        return [(self._topics[kind], 0) for kind in READS]

    def _on_connect(self, client: mqtt.Client, u: object, f: object, reason: object,
                    p: object) -> None:
        """As a real AGV (``agents_sim.vda_agv``): every connection after the first (paho
        reconnecting, e.g. after a broker restart) is announced ONLINE again — the pump
        has the robot do it, in the SimPy thread."""
        super()._on_connect(client, u, f, reason, p)
        if getattr(reason, "is_failure", False):
            return
        self._connects += 1
        if self._connects > 1:
            self._inbox.put(AgvInbound(self.robot.agent_id, RECONNECTED, b""))

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        kind = msg.topic.rsplit("/", 1)[-1]
        self._inbox.put(AgvInbound(self.robot.agent_id, kind, bytes(msg.payload)))

    def publish(self, kind: str, payload: bytes) -> bool:
        """Send one of the AGV's messages; False if the connection is down."""
        if not self.alive or kind not in self._topics:
            return False
        retain = kind in ("connection", "factsheet")  # §6.14, §6.15
        info = self.client.publish(self._topics[kind], payload,
                                   qos=1 if kind == "connection" else 0, retain=retain)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def close(self, offline: bool = False) -> None:
        """Disconnect cleanly; with ``offline`` after publishing the retained OFFLINE
        ``connection`` (a graceful leave, §6.14)."""
        last = None
        if offline:
            _, message = self.robot.agv.connection("OFFLINE", self.robot.now)
            last = (self._topics["connection"], encode_vda(message, "connection"))
        self._leave(last)


class LiveVda:
    """A live run's VDA 5050 robots and their connections."""

    def __init__(self, env: simpy.Environment, *, host: str, port: int, login: Login,
                 tag: str, timeout: float, pump_s: float) -> None:
        self.env = env
        self.robots: dict[tuple[str, str], SimVdaRobot] = {}
        """(facility, agent id) -> the robot."""
        self.conns: dict[tuple[str, str], AgvConnection] = {}
        self._host, self._port, self._login, self._tag = host, port, login, tag
        self._timeout, self._pump_s = timeout, pump_s
        self._inbox: dict[str, queue.Queue[AgvInbound]] = {}
        self._pumping = False

    def add(self, f: FacilitySpec, *, seed: int, epoch: float) -> None:
        """Connect the facility's VDA 5050 robots (``seed``: the facility's)."""
        m = f.facility_map
        inbox = self._inbox.setdefault(f.id, queue.Queue())
        for entry in f.fleet:
            if entry.protocol != "vda5050":
                continue
            assert m is not None  # load_scenario: a VDA robot needs the map
            model = vda_model(entry)
            start = entry.node or (m.chargers or list(m.nodes))[0]
            for n in range(1, entry.count + 1):
                key = (f.id, f"{entry.id_prefix or entry.kind}-{n}")
                robot = SimVdaRobot(
                    self.env, key[1], model, node=start, facility_map=m, epoch=epoch,
                    link=SimLink(self.env, 0.0), to_edge=self._sender(key), seed=seed,
                    battery=100.0 if entry.battery is None else entry.battery)
                self.robots[key] = robot
                self._connect(key, inbox)
        if self.robots and not self._pumping:
            self._pumping = True
            self.env.process(self._pump())

    def _sender(self, key: tuple[str, str]) -> Any:
        def send(_serial: str, kind: str, payload: bytes) -> None:
            conn = self.conns.get(key)
            if conn is not None:
                conn.publish(kind, payload)
        return send

    def _connect(self, key: tuple[str, str], inbox: queue.Queue[AgvInbound]) -> None:
        conn = AgvConnection(self.robots[key], inbox, host=self._host, port=self._port,
                             login=self._login, tag=self._tag)
        self.conns[key] = conn
        conn.connect(self._timeout)

    def _pump(self) -> Generator[simpy.Event, Any, None]:
        """Hand the robots what the broker delivered (paho threads only queue it)."""
        while True:
            for fid, inbox in self._inbox.items():
                while True:
                    try:
                        item = inbox.get_nowait()
                    except queue.Empty:
                        break
                    robot = self.robots.get((fid, item.serial))
                    if robot is not None and item.kind == RECONNECTED:
                        robot.link_restored()  # ONLINE and its state, as on any connect
                    elif robot is not None:
                        kind: VdaKind = item.kind  # type: ignore[assignment]
                        robot.link.send(robot.receive, (kind, item.payload))
            yield self.env.timeout(self._pump_s)

    def owns(self, key: tuple[str, str]) -> bool:
        """Whether (facility, agent id) is one of these robots."""
        return key in self.robots

    def fault(self, fault: Fault, key: tuple[str, str]) -> Generator[simpy.Event, Any, None]:
        """``agent_failure`` or ``network_drop`` of a robot: its connection dropped (the
        will); after ``duration_s`` connected again, repaired or with its link back."""
        robot = self.robots[key]
        self.conns[key].kill()
        if fault.type == "agent_failure":
            robot.fail()
        else:
            robot.link.up = False
        if fault.duration_s is None:
            return
        yield self.env.timeout(fault.duration_s)
        self._connect(key, self._inbox[key[0]])
        if fault.type == "agent_failure":
            robot.repair()
        else:
            robot.link.up = True
            robot.link_restored()

    def close(self) -> None:
        """Every robot leaves: OFFLINE (a graceful leave) unless broken down."""
        for key, conn in self.conns.items():
            conn.close(offline=not self.robots[key].dead)
