"""Simulated native agents over a real Mosquitto broker, driven by a tiny edge stand-in."""

from __future__ import annotations

import getpass
import queue
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agents_sim.native import AgentSpec, Failure, FleetRunner, mixed_fleet
from broker import Identity, PasswordFile, mosquitto, write_mosquitto_config
from topics import (
    AgentConn,
    Assign,
    EdgeStatus,
    EventAck,
    Message,
    agent_topic,
    decode_agent_conn,
    decode_agent_event,
    decode_agent_state,
    edge_topic,
    encode,
)

pytestmark = pytest.mark.mosquitto
F = "plant1"


def _private_mosquitto(tmp_path: Path, passwd: PasswordFile, port: int) -> Path:
    """Mosquitto files with our users and ACL; run as this user, who can read them."""
    return write_mosquitto_config(tmp_path / "m", passwd, host="127.0.0.1", port=port,
                                  run_as=getpass.getuser())


class Edge:
    """Stands in for the edge: records what agents send, acknowledges their events (unless
    ``ack=False``) and publishes commands."""

    def __init__(self, port: int, *, user: tuple[str, str] | None = None, ack: bool = True
                 ) -> None:
        self.ack = ack
        self.inbox: queue.SimpleQueue[tuple[str, Message]] = queue.SimpleQueue()
        self.events: list[Message] = []
        """Every agent event received, in order (``wait_for`` does not consume these)."""
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="edge-standin")
        if user:
            self.client.username_pw_set(*user)
        ready = queue.SimpleQueue[int]()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: ready.put(1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe([(f"fleetflow/v1/{F}/agent/+/{k}", 1)
                               for k in ("event", "conn", "state")])
        ready.get(timeout=5)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        kind = msg.topic.rsplit("/", 1)[1]
        decoder = {"event": decode_agent_event, "conn": decode_agent_conn,
                   "state": decode_agent_state}[kind]
        message = decoder(bytes(msg.payload))
        self.inbox.put((msg.topic, message))
        if kind == "event":
            self.events.append(message)
            if self.ack:
                self.acknowledge(message)

    def acknowledge(self, event: Message) -> None:
        """Send the agent an EventAck naming ``event``."""
        self.acknowledge_id(event.agent_id, event.event_id)  # type: ignore[attr-defined]

    def acknowledge_id(self, agent_id: str, event_id: str) -> None:
        """Send ``agent_id`` an EventAck naming ``event_id``."""
        self.send(agent_id, EventAck(command_id=f"k-{event_id}", event_ids=[event_id]))

    def send(self, agent_id: str, cmd: Message) -> None:
        self.client.publish(agent_topic(F, agent_id, "cmd"), encode(cmd), qos=1)

    def status(self, online: bool) -> None:
        """Publish the edge's retained status."""
        self.client.publish(edge_topic(F, "status"), encode(EdgeStatus(facility=F, online=online)),
                            qos=1, retain=True).wait_for_publish(5)

    def wait_for(self, pred: object, timeout: float = 10.0) -> tuple[str, Message]:
        """The first message for which ``pred(topic, msg)`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            topic, msg = self.inbox.get(timeout=max(0.01, deadline - time.monotonic()))
            if pred(topic, msg):  # type: ignore[operator]
                return topic, msg

    def events_of(self, agent_id: str, step_id: str, last: str, timeout: float = 10.0
                  ) -> list[str]:
        """Event types of one step, in arrival order, up to ``last``."""
        seen: list[str] = []
        while not seen or seen[-1] != last:
            _, msg = self.wait_for(
                lambda _t, m: getattr(m, "step_id", None) == step_id
                and getattr(m, "agent_id", None) == agent_id
                and m.type not in ("state",), timeout)
            seen.append(str(msg.type))  # type: ignore[attr-defined]
        return seen

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _assign(step: str, cid: str, duration: float = 0.3) -> Assign:
    return Assign(command_id=cid, workflow_id="wf1", step_id=step, kind="robot",
                  params={"duration_s": duration})


def test_agent_answers_assign_with_the_event_sequence(mosquitto_port: int) -> None:
    """Over Mosquitto, an Assign yields accepted, started, progress x2, done — in order."""
    edge = Edge(mosquitto_port)
    runner = FleetRunner(F, [AgentSpec("r1", progress_steps=2, state_period_s=0.2)],
                         port=mosquitto_port)
    try:
        runner.start()
        edge.wait_for(lambda t, m: isinstance(m, AgentConn) and m.online)
        edge.send("r1", _assign("s1", "c1"))
        assert edge.events_of("r1", "s1", "step_done") == [
            "step_accepted", "step_started", "step_progress", "step_progress", "step_done"]
    finally:
        runner.stop()
        edge.close()


def test_redelivered_assign_is_applied_once(mosquitto_port: int) -> None:
    """Publishing the same Assign twice gives one step_accepted, not two."""
    edge = Edge(mosquitto_port)
    runner = FleetRunner(F, [AgentSpec("r1", progress_steps=0)], port=mosquitto_port)
    try:
        runner.start()
        edge.send("r1", _assign("s1", "c1"))
        edge.send("r1", _assign("s1", "c1"))
        assert edge.events_of("r1", "s1", "step_done") == [
            "step_accepted", "step_started", "step_done"]
        time.sleep(0.3)
        assert runner.behaviours["r1"].completed == ["wf1/s1"]
    finally:
        runner.stop()
        edge.close()


def test_clean_stop_leaves_a_retained_offline_conn(mosquitto_port: int) -> None:
    """After stop(), a newcomer reads the agent's retained conn: offline."""
    runner = FleetRunner(F, [AgentSpec("r1")], port=mosquitto_port)
    runner.start()
    time.sleep(0.2)
    runner.stop()
    edge = Edge(mosquitto_port)
    try:
        _, conn = edge.wait_for(lambda t, m: isinstance(m, AgentConn))
        assert isinstance(conn, AgentConn) and conn.agent_id == "r1" and not conn.online
    finally:
        edge.close()


def test_will_fires_when_agent_dies_mid_step(mosquitto_port: int) -> None:
    """A 'die' fault drops the connection uncleanly; the broker publishes the offline will."""
    edge = Edge(mosquitto_port)
    spec = AgentSpec("r1", progress_steps=4, failures=(Failure("s1", mode="die", at=0.5),))
    runner = FleetRunner(F, [spec], port=mosquitto_port, keepalive=5)
    try:
        runner.start()
        edge.wait_for(lambda t, m: isinstance(m, AgentConn) and m.online)
        edge.send("r1", _assign("s1", "c1"))
        _, conn = edge.wait_for(lambda t, m: isinstance(m, AgentConn), timeout=10)
        assert isinstance(conn, AgentConn) and not conn.online and conn.agent_id == "r1"
        assert runner.behaviours["r1"].dead
    finally:
        runner.stop()
        edge.close()


def test_multiplexed_runner_speaks_for_many_agents(mosquitto_port: int) -> None:
    """Forty agents on two connections each announce themselves and answer their own Assign."""
    edge = Edge(mosquitto_port)
    specs = mixed_fleet(40, progress_steps=0, state_period_s=5.0)
    runner = FleetRunner(F, specs, port=mosquitto_port, mode="multiplexed", connections=2)
    try:
        runner.start()
        online: set[str] = set()
        while len(online) < 40:
            _, m = edge.wait_for(lambda t, m: isinstance(m, AgentConn) and m.online)
            online.add(m.agent_id)  # type: ignore[attr-defined]
        for s in specs:
            edge.send(s.agent_id, Assign(command_id=f"c-{s.agent_id}", workflow_id="wf1",
                                         step_id=f"s-{s.agent_id}", kind=s.kind,
                                         params={"duration_s": 0.2}))
        done: set[str] = set()
        while len(done) < 40:
            topic, m = edge.wait_for(lambda t, m: m.type == "step_done")  # type: ignore[attr-defined]
            assert topic == agent_topic(F, m.agent_id, "event")  # type: ignore[attr-defined]
            assert m.step_id == f"s-{m.agent_id}"  # type: ignore[attr-defined]
            done.add(m.agent_id)  # type: ignore[attr-defined]
        assert done == {s.agent_id for s in specs}
    finally:
        runner.stop()
        edge.close()


def test_agents_with_acl_credentials(mosquitto_bin: str, port: int, tmp_path: Path) -> None:
    """With per-agent users and the generated ACL, each agent works under its own login."""
    passwd = PasswordFile(tmp_path / "passwd")
    passwd.add(Identity("r1", "agent", facility=F), "pw-r1-secret", iterations=1000)
    passwd.add(Identity("edge1", "edge", facility=F), "pw-edge-secret", iterations=1000)
    conf = _private_mosquitto(tmp_path, passwd, port)
    with mosquitto(conf, port, mosquitto_bin):
        edge = Edge(port, user=("edge1", "pw-edge-secret"))
        runner = FleetRunner(F, [AgentSpec("r1", progress_steps=0)], port=port,
                             credentials=lambda a: (a, f"pw-{a}-secret"))
        try:
            runner.start()
            edge.send("r1", _assign("s1", "c1"))
            assert edge.events_of("r1", "s1", "step_done")[-1] == "step_done"
        finally:
            runner.stop()
            edge.close()


def test_wrong_password_fails_to_start(mosquitto_bin: str, port: int, tmp_path: Path) -> None:
    """An agent refused by the broker makes start() raise a clear TimeoutError."""
    passwd = PasswordFile(tmp_path / "passwd")
    passwd.add(Identity("r1", "agent", facility=F), "pw-r1-secret", iterations=1000)
    conf = _private_mosquitto(tmp_path, passwd, port)
    with mosquitto(conf, port, mosquitto_bin):
        runner = FleetRunner(F, [AgentSpec("r1")], port=port,
                             credentials=lambda a: (a, "wrong"))
        with pytest.raises(TimeoutError, match="did not connect"):
            runner.start(timeout=2)


def _step_events(edge: Edge, timeout: float = 10.0) -> tuple[str, Message]:
    return edge.wait_for(lambda _t, m: m.type not in ("state", "conn"), timeout)  # type: ignore[attr-defined]


def _drain(edge: Edge) -> list[Message]:
    """Everything received so far (and forget it)."""
    got = []
    while True:
        try:
            got.append(edge.inbox.get_nowait()[1])
        except queue.Empty:
            return got


def test_agent_resends_an_unacknowledged_event_until_acked(mosquitto_port: int) -> None:
    """An event the edge does not acknowledge comes again (same event id) after about 1 s;
    once acknowledged it stops."""
    edge = Edge(mosquitto_port, ack=False)
    runner = FleetRunner(F, [AgentSpec("r1", state_period_s=5.0)], port=mosquitto_port)
    try:
        runner.start()
        edge.send("r1", _assign("s1", "c1", 100.0))
        _, first = edge.wait_for(lambda _t, m: m.type == "step_accepted")  # type: ignore[attr-defined]
        t0 = time.monotonic()
        _, again = edge.wait_for(lambda _t, m: m.type == "step_accepted", timeout=5)  # type: ignore[attr-defined]
        assert again == first and time.monotonic() - t0 > 0.5
        for event in list(edge.events):
            edge.acknowledge(event)
        outbox = runner.behaviours["r1"].delivery.outbox
        deadline = time.monotonic() + 5
        while len(outbox):
            assert time.monotonic() < deadline, "the agent ignored the EventAcks"
            time.sleep(0.05)
        _drain(edge)
        with pytest.raises(queue.Empty):  # nothing for 3 s, though a resend was due
            _step_events(edge, timeout=3.0)
    finally:
        runner.stop()
        edge.close()


def test_edge_coming_online_triggers_an_immediate_resend(mosquitto_port: int) -> None:
    """When the edge's status turns online the agent resends its unacknowledged events at
    once, long before its backoff would."""
    edge = Edge(mosquitto_port, ack=False)
    edge.status(False)
    runner = FleetRunner(F, [AgentSpec("r1", state_period_s=5.0)], port=mosquitto_port)
    try:
        runner.start()
        edge.send("r1", _assign("s1", "c1", 100.0))
        edge.wait_for(lambda _t, m: m.type == "step_accepted")  # type: ignore[attr-defined]
        time.sleep(4.5)  # resends at ~1 and ~3 s; the next one is due at ~7 s
        _drain(edge)
        edge.status(True)
        t0 = time.monotonic()
        edge.wait_for(lambda _t, m: m.type == "step_accepted", timeout=2)  # type: ignore[attr-defined]
        assert time.monotonic() - t0 < 2.0
    finally:
        runner.stop()
        edge.close()
