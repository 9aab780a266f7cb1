"""The edge runtime as a real subprocess on real brokers (Mosquitto and the embedded amqtt).

Simulated native agents (``agents_sim.native.FleetRunner``) answer the edge's commands; a
watcher client records everything the edge publishes on ``edge/#``.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from conftest import free_port, run_mosquitto
from paho.mqtt.enums import CallbackAPIVersion

from agents_sim.native import AgentSpec, FleetRunner
from topics import (
    AgentConn,
    AgentState,
    EdgeEvent,
    EdgeStatus,
    ErrorReport,
    HubCommand,
    StepDone,
    decode_edge_event,
    decode_edge_status,
    decode_error_report,
    encode,
)

F = "e2e"
ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
TEMPLATE = """\
name: e2e_pick
steps:
  - id: fetch
    kind: robot
    capabilities: [lift]
    location: p1
    estimated_duration_s: 1
  - id: deliver
    kind: robot
    capabilities: [lift]
    location: pack
    estimated_duration_s: 1
    after: [fetch]
"""
DONE_KINDS = ("workflow_completed",)


# --- brokers -----------------------------------------------------------------------------


def _amqtt(tmp: Path) -> Iterator[int]:
    from broker import BrokerProcess

    port = free_port()
    with BrokerProcess("127.0.0.1", port, tmp / "passwd", allow_anonymous_dev=True):
        yield port


@pytest.fixture(params=["mosquitto", "amqtt"])
def broker_port(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[int]:
    """A running broker of each kind; yields its port."""
    if request.param == "mosquitto":
        yield request.getfixturevalue("mosquitto_port")
    else:
        yield from _amqtt(tmp_path)


# --- the edge process --------------------------------------------------------------------


class Edge:
    """``fleetflow edge`` in a child process."""

    def __init__(self, port: int, tmp: Path, metrics_port: int = 0) -> None:
        self.port, self.tmp, self.metrics_port = port, tmp, metrics_port
        tmp.mkdir(parents=True, exist_ok=True)
        self.data = tmp / "data"
        self.templates = tmp / "templates"
        self.templates.mkdir(exist_ok=True)
        (self.templates / "e2e_pick.yaml").write_text(TEMPLATE)
        self.log = tmp / "edge.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_args: list[str] = []

    def start(self) -> Edge:
        cmd = [PYTHON, "-m", "fleetflow", "edge", "--facility", F,
               "--broker", f"mqtt://127.0.0.1:{self.port}", "--data", str(self.data),
               "--templates", str(self.templates), "--map", str(ROOT / "maps" / "demo.yaml"),
               "--metrics-port", str(self.metrics_port), "--log-level", "DEBUG",
               *self.start_args]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log)
        return self

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def edges(tmp_path: Path) -> Iterator[Callable[..., Edge]]:
    """Factory of edge processes; every one is killed at the end."""
    made: list[Edge] = []

    def make(port: int, metrics_port: int = 0) -> Edge:
        edge = Edge(port, tmp_path, metrics_port)
        made.append(edge)
        return edge.start()

    yield make
    for edge in made:
        edge.close()


# --- watching the edge -------------------------------------------------------------------


class Watch:
    """A client that records what the edge publishes on ``edge/#``, and can publish."""

    def __init__(self, port: int, login: tuple[str, str] | None = None) -> None:
        self.events: list[EdgeEvent] = []
        self.errors: list[ErrorReport] = []
        self.statuses: list[EdgeStatus] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{port}-{id(self)}")
        self.client.on_connect = lambda c, *_: c.subscribe(f"fleetflow/v1/{F}/edge/#", qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        if login is not None:
            self.client.username_pw_set(*login)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "watcher did not subscribe"

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        kind = msg.topic.rsplit("/", 1)[-1]
        with self._cond:
            if kind == "events":
                self.events.append(decode_edge_event(bytes(msg.payload)))
            elif kind == "errors":
                self.errors.append(decode_error_report(bytes(msg.payload)))
            elif kind == "status":
                self.statuses.append(decode_edge_status(bytes(msg.payload)))
            self._cond.notify_all()

    def wait_for(self, what: Callable[[Watch], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not what(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out; events {[e.kind for e in self.events][-15:]}, "
                        f"errors {[e.reason for e in self.errors]}")
                self._cond.wait(min(left, 0.2))

    def kinds(self) -> list[str]:
        with self._cond:
            return [e.kind for e in self.events]

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos=qos).wait_for_publish(5)

    def command(self, action: str, **args: Any) -> str:
        command_id = f"cmd-{len(self.events)}-{time.monotonic_ns()}"
        cmd = HubCommand(command_id=command_id, action=action, args=args)  # type: ignore[arg-type]
        self.publish(f"fleetflow/v1/{F}/edge/cmd", encode(cmd))
        return command_id

    def command_until_replied(self, action: str, timeout: float = 60.0, **args: Any) -> str:
        """Send a hub command as a hub must (docs/protocol.md, "Delivery"): again and again,
        backing off from 0.5 s, until its ``command_reply`` event is seen."""
        command_id = f"cmd-{len(self.events)}-{time.monotonic_ns()}"
        cmd = HubCommand(command_id=command_id, action=action, args=args)  # type: ignore[arg-type]

        def replied(w: Watch) -> bool:
            return any(e.kind == "command_reply" and e.data.get("cmd") == command_id
                       for e in w.events)

        deadline, wait = time.monotonic() + timeout, 0.5
        while True:
            self.publish(f"fleetflow/v1/{F}/edge/cmd", encode(cmd))
            try:
                self.wait_for(replied, min(wait, max(0.0, deadline - time.monotonic())))
                return command_id
            except AssertionError:
                if time.monotonic() >= deadline:
                    raise
                wait = min(wait * 2, 8.0)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def watch() -> Iterator[Callable[[int], Watch]]:
    made: list[Watch] = []

    def make(port: int) -> Watch:
        made.append(Watch(port))
        return made[-1]

    yield make
    for w in made:
        w.close()


def _fleet(port: int, n: int = 2, speed: float = 20.0) -> FleetRunner:
    specs = [AgentSpec(f"r{i}", "robot", ("lift",), node="dock", state_period_s=0.5,
                       speed=speed) for i in range(n)]
    return FleetRunner(F, specs, port=port)


def _online(w: Watch) -> bool:
    return any(s.online for s in w.statuses)


def _completed(w: Watch, workflow_id: str) -> bool:
    return any(e.kind in DONE_KINDS and e.workflow_id == workflow_id for e in w.events)


def _contiguous(events: list[EdgeEvent]) -> bool:
    seqs = sorted({e.seq for e in events})
    return seqs == list(range(seqs[0], seqs[0] + len(seqs)))


# --- tests -------------------------------------------------------------------------------


def test_workflow_runs_to_completion(broker_port: int, edges: Callable[..., Edge],
                                     watch: Callable[[int], Watch]) -> None:
    """A hub command creates a workflow; native agents carry it out; metrics count it."""
    metrics = free_port()
    w = watch(broker_port)
    edge = edges(broker_port, metrics)
    w.wait_for(_online, 60)
    with _fleet(broker_port):
        w.command("create_workflow", template="e2e_pick", workflow_id="w1")
        w.wait_for(lambda w: _completed(w, "w1"), 90)
    assert _contiguous(w.events) and w.events[0].seq == 1
    # Read before scraping: events after completion (archiving, agent states) may still
    # arrive while the scrape runs, and the gauge could not have counted those.
    seen = max(e.seq for e in w.events)
    body = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5).read()
    text = body.decode()
    assert 'fleetflow_edge_inputs_total{kind="hub_command"} 1.0' in text
    assert "fleetflow_edge_commit_seconds_count" in text
    high_water = re.search(r"^fleetflow_edge_high_water_seq (\S+)$", text, re.MULTILINE)
    assert high_water and float(high_water[1]) >= seen
    edge.signal(signal.SIGTERM)
    assert edge.wait() == 0


def test_sigterm_publishes_offline_and_exits_0(mosquitto_port: int, edges: Callable[..., Edge],
                                               watch: Callable[[int], Watch]) -> None:
    """SIGTERM: the edge drains, publishes a retained offline status and exits 0."""
    w = watch(mosquitto_port)
    edge = edges(mosquitto_port)
    w.wait_for(_online, 60)
    w.command("create_workflow", template="e2e_pick", workflow_id="w-term")
    w.wait_for(lambda w: len(w.events) >= 1, 30)
    edge.signal(signal.SIGTERM)
    assert edge.wait() == 0
    w.wait_for(lambda w: not w.statuses[-1].online, 30)
    assert w.statuses[-1].high_water_seq == w.events[-1].seq
    late = Watch(mosquitto_port)  # the offline status is retained
    try:
        late.wait_for(lambda x: bool(x.statuses), 30)
        assert not late.statuses[-1].online
    finally:
        late.close()


def test_bad_inputs_rejected_while_serving(broker_port: int, edges: Callable[..., Edge],
                                           watch: Callable[[int], Watch]) -> None:
    """Every kind of bad input gets its reason on edge/errors; a healthy fleet is still served."""
    w = watch(broker_port)
    edges(broker_port)
    w.wait_for(_online, 60)
    a = f"fleetflow/v1/{F}/agent"
    import msgpack

    bad: list[tuple[str, bytes, str]] = [
        (f"{a}/r0/state", b"\x00" * 70_000, "payload_too_large"),
        (f"{a}/r0/event", b"\xc1 junk", "malformed"),
        (f"{a}/r0/state", msgpack.packb([1, "state", {"agent_id": "r0", "ts": 1.0,
                                                      "battery": float("nan")}]), "not_finite"),
        (f"{a}/r0/state", msgpack.packb([1, "state", {"agent_id": "r0", "ts": "x"}]), "schema"),
        (f"{a}/ghost/event", encode(StepDone(event_id="e", agent_id="ghost", ts=1,
                                             workflow_id="w", step_id="s")), "unknown_agent"),
        (f"{a}/r0/state", encode(AgentState(agent_id="r1", ts=1)), "identity_mismatch"),
        (f"{a}/r0/conn", encode(AgentConn(agent_id="r1", online=False)), "identity_mismatch"),
        (f"fleetflow/v1/{F}/edge/cmd", msgpack.packb([1, "hub_command", {"command_id": "c",
                                                                           "action": "x"}]),
         "schema"),
    ]
    with _fleet(broker_port):
        w.command("create_workflow", template="e2e_pick", workflow_id="w-bad")
        for topic, payload, _ in bad:
            w.publish(topic, payload)
        expected = [reason for *_, reason in bad]
        w.wait_for(lambda w: sorted(e.reason for e in w.errors) == sorted(expected), 45)
        w.wait_for(lambda w: _completed(w, "w-bad"), 90)
    reported = {(e.topic, e.reason) for e in w.errors}
    assert reported == {(t, r) for t, _, r in bad}
    assert not any(e.workflow_id == "w" for e in w.events)


KILL_ROUNDS = int(os.environ.get("FLEETFLOW_KILL9_ROUNDS", "5"))
"""kill -9 rounds per broker (docs/edge.md: run with 20 for the long proof)."""


def _started(workflow_id: str) -> Callable[[Watch], bool]:
    return lambda w: any(e.kind == "step_started" and e.workflow_id == workflow_id
                         for e in w.events)


@pytest.mark.slow
@pytest.mark.parametrize("broker_port", ["mosquitto", "amqtt"], indirect=True)
def test_kill9_restart_loses_nothing(broker_port: int, edges: Callable[..., Edge],
                                     watch: Callable[[int], Watch]) -> None:
    """kill -9 mid-workflow with a hub command in flight, restart, KILL_ROUNDS times: every
    command is carried out, every workflow finishes, every event seen is in the store with
    its hlc, seq contiguous."""
    w = watch(broker_port)
    edge = edges(broker_port)
    w.wait_for(_online, 60)
    workflows = [f"w-crash-{n}" for n in range(KILL_ROUNDS + 1)]  # the first, one per kill
    with _fleet(broker_port, speed=2.0):
        w.command_until_replied("create_workflow", template="e2e_pick",
                                workflow_id=workflows[0])
        w.wait_for(_started(workflows[0]), 60)
        for running, wid in itertools.pairwise(workflows):
            edge.signal(signal.SIGSTOP)  # frozen, the edge commits and acknowledges nothing
            hub = threading.Thread(target=w.command_until_replied, args=("create_workflow",),
                                   kwargs={"template": "e2e_pick", "workflow_id": wid,
                                           "depends_on": [running]})
            hub.start()  # a hub resends until it sees the reply: the first copy is in flight
            time.sleep(0.5)
            edge.signal(signal.SIGKILL)
            edge.wait()
            seen_before = list(w.events)
            edge.start()
            hub.join(70)
            w.wait_for(lambda w, a=running, b=wid: _completed(w, a) and _started(b)(w), 60)
        w.wait_for(lambda w: _completed(w, workflows[-1]), 60)
    edge.signal(signal.SIGTERM)
    assert edge.wait() == 0
    from edge_runtime.store import EventStore, store_path

    store = EventStore(store_path(edge.data), F, read_only=True)
    try:
        stored = {e.seq: e for e in store.read()}
        assert list(stored) == list(range(1, store.last_seq + 1))
    finally:
        store.close()
    for event in w.events:
        assert event.seq in stored, f"event {event.seq} was published but is not in the store"
        assert stored[event.seq].kind == event.kind
    assert seen_before and all(stored[e.seq].hlc == e.hlc for e in seen_before)


def test_unreachable_broker_is_one_line_and_retries(edges: Callable[..., Edge],
                                                    tmp_path: Path) -> None:
    """No broker: one clear error line, the edge keeps retrying, SIGTERM still exits 0."""
    port = free_port()
    edge = edges(port)
    deadline = time.monotonic() + 15
    while "cannot reach broker" not in edge.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = [ln for ln in edge.output().splitlines() if "cannot reach broker" in ln]
    assert lines and f"mqtt://127.0.0.1:{port}" in lines[0]
    assert edge.proc is not None and edge.proc.poll() is None
    edge.signal(signal.SIGTERM)
    assert edge.wait() == 0


VDA_TEMPLATE = """\
name: e2e_vda
steps:
  - {id: drive, kind: robot, capabilities: [transport], location: p2}
  - {id: pick, kind: robot, capabilities: [transport], location: pack, action: pick,
     after: [drive]}
"""


def _vda_state(version: str, serial: str = "agv9") -> bytes:
    import json

    return json.dumps({
        "headerId": 1, "timestamp": "2026-01-01T00:00:00.000Z", "version": version,
        "manufacturer": "acme", "serialNumber": serial, "orderId": "", "orderUpdateId": 0,
        "lastNodeId": "", "lastNodeSequenceId": 0, "nodeStates": [], "edgeStates": [],
        "driving": False, "actionStates": [],
        "batteryState": {"batteryCharge": 80.0, "charging": False},
        "operatingMode": "AUTOMATIC", "errors": [],
        "safetyState": {"eStop": "NONE", "fieldViolation": False},
    }).encode()


def test_vda_agv_runs_steps_and_wrong_major_is_rejected(
        mosquitto_port: int, watch: Callable[[int], Watch], tmp_path: Path) -> None:
    """A VDA 5050 AGV (own process) carries out a workflow; VDA 1.x messages are refused."""
    w = watch(mosquitto_port)
    edge = Edge(mosquitto_port, tmp_path)
    (edge.templates / "e2e_vda.yaml").write_text(VDA_TEMPLATE)
    edge.start_args = ["--vda"]
    try:
        edge.start()
        w.wait_for(_online, 60)
        agv = subprocess.Popen(
            [PYTHON, "-m", "agents_sim.vda_agv", "--port", str(mosquitto_port),
             "--manufacturer", "acme", "--serial", "agv1", "--node", "dock", "--x", "0",
             "--y", "0", "--map-id", "demo_floor", "--speed", "20", "--action-s", "0.2",
             "--state-interval", "1"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            w.wait_for(lambda w: "agent_joined" in w.kinds(), 60)
            w.publish("uagv/v1/acme/agv9/state", _vda_state("1.1.0"), qos=0)
            w.publish("uagv/v2/acme/agv9/state", _vda_state("1.1.0"), qos=0)
            w.command("create_workflow", template="e2e_vda", workflow_id="w-vda")
            w.wait_for(lambda w: _completed(w, "w-vda"), 90)
            w.wait_for(lambda w: len(w.errors) >= 2, 30)
        finally:
            agv.terminate()
            agv.wait(10)
        assert [e.reason for e in w.errors] == ["version", "version"]
        assert {e.agent_id for e in w.errors} == {"agv9"}
        done = [e for e in w.events if e.kind == "step_done" and e.workflow_id == "w-vda"]
        assert len(done) == 2
        edge.signal(signal.SIGTERM)
        assert edge.wait() == 0
    finally:
        edge.close()


def test_credentials_on_the_embedded_broker(tmp_path: Path) -> None:
    """With its edge user the edge comes online; with a wrong password it is refused, says
    so, and keeps retrying."""
    from broker import BrokerProcess, Identity, PasswordFile

    users = PasswordFile(tmp_path / "passwd")
    users.add(Identity("edge-e2e", "edge", facility=F), "right", iterations=1000)
    users.add(Identity("admin", "admin"), "admin", iterations=1000)
    port = free_port()
    with BrokerProcess("127.0.0.1", port, tmp_path / "passwd"):
        w = Watch(port, ("admin", "admin"))
        good = Edge(port, tmp_path / "good")
        bad = Edge(port, tmp_path / "bad")
        good.start_args = ["--username", "edge-e2e", "--password", "right"]
        bad.start_args = ["--username", "edge-e2e", "--password", "wrong"]
        try:
            bad.start()
            good.start()
            w.wait_for(_online, 60)
            deadline = time.monotonic() + 10
            while "refused the connection" not in bad.output() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "refused the connection" in bad.output()
            assert bad.proc is not None and bad.proc.poll() is None
            for edge in (good, bad):
                edge.signal(signal.SIGTERM)
                assert edge.wait() == 0
        finally:
            good.close()
            bad.close()
            w.close()


def test_edge_reconnects_after_broker_restart(mosquitto_bin: str, tmp_path: Path,
                                              edges: Callable[..., Edge]) -> None:
    """The broker goes away and comes back on its port: the edge reconnects, resubscribes,
    announces itself online again and serves new commands."""
    port = free_port()
    with run_mosquitto(mosquitto_bin, tmp_path, port):
        edge = edges(port)
        w = Watch(port)
        try:
            w.wait_for(_online, 60)
        finally:
            w.close()
    # The first Mosquitto is stopped here.
    time.sleep(1.0)
    with run_mosquitto(mosquitto_bin, tmp_path, port):
        w = Watch(port)
        try:
            w.wait_for(_online, 60)  # retained status is gone with the old broker: a new one
            w.command("create_workflow", template="e2e_pick", workflow_id="w-again")
            w.wait_for(lambda w: any(e.workflow_id == "w-again" for e in w.events), 30)
        finally:
            w.close()
        assert "disconnected from the broker" in edge.output()
        edge.signal(signal.SIGTERM)
        assert edge.wait() == 0
