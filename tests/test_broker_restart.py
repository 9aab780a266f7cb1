"""The broker stops and comes back on its port in the middle of a run (docs/protocol.md,
"Delivery"): an edge subprocess, native agents (``FleetRunner``), a VDA 5050 test AGV and a
hub (``HubClient``) creating workflows. Neither broker keeps anything across the restart
(Mosquitto with ``persistence false``, the embedded amqtt broker), so whatever crossed it
only survives because its sender resends. The truth is read from the edge's own store."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import ExitStack
from pathlib import Path

import pytest
from conftest import free_port
from test_edge_e2e import VDA_TEMPLATE, Edge, F

from agents_sim.mqtt_hub import HubClient, wait_edge_online
from agents_sim.native import AgentSpec, FleetRunner
from agents_sim.vda_agv import AgvRunner, run_agv
from broker import BrokerProcess, mosquitto
from edge_runtime.core import Event
from edge_runtime.store import EventStore, store_path
from topics import EdgeEvent, HubCommand

pytestmark = pytest.mark.slow
DOWN_S = 1.5
"""Seconds the broker stays away."""


class Broker:
    """A broker of one kind that can be stopped by a signal and started again on one port."""

    def __init__(self, kind: str, port: int, tmp: Path, binary: str | None) -> None:
        self.kind, self.port, self.tmp, self.binary = kind, port, tmp, binary
        self.starts = 0
        self._stack: ExitStack | None = None
        self._proc = None

    def start(self) -> Broker:
        self.starts += 1
        self._stack = ExitStack()
        if self.kind == "mosquitto":
            conf = self.tmp / f"mosquitto-{self.starts}.conf"
            conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                            "persistence false\n")
            self._proc = self._stack.enter_context(mosquitto(conf, self.port, self.binary))
        else:
            broker = BrokerProcess("127.0.0.1", self.port, self.tmp / "passwd",
                                   allow_anonymous_dev=True,
                                   log_file=self.tmp / f"amqtt-{self.starts}.log")
            self._proc = self._stack.enter_context(broker).process
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)
            self._proc.wait(10)
        if self._stack is not None:
            self._stack.close()
        self._stack = self._proc = None

    def restart(self, sig: int) -> None:
        self.stop(sig)
        time.sleep(DOWN_S)
        self.start()


@pytest.fixture(params=["mosquitto", "amqtt"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    """A restartable broker of each kind on a fixed port, without persistence."""
    binary = request.getfixturevalue("mosquitto_bin") if request.param == "mosquitto" else None
    b = Broker(request.param, free_port(), tmp_path / "broker", binary)
    b.tmp.mkdir()
    b.start()
    try:
        yield b
    finally:
        b.stop(signal.SIGKILL)


@pytest.fixture
def edge(broker: Broker, tmp_path: Path) -> Iterator[Edge]:
    """``fleetflow edge --vda`` on the demo map with a native and a VDA template, online."""
    e = Edge(broker.port, tmp_path / "edge")
    (e.templates / "e2e_vda.yaml").write_text(VDA_TEMPLATE)
    e.start_args = ["--vda"]
    e.start()
    try:
        assert wait_edge_online("127.0.0.1", broker.port, F, username=None, timeout=60), \
            e.output()[-2000:]
        yield e
    finally:
        e.close()


def _fleet(port: int) -> FleetRunner:
    specs = [AgentSpec(f"r{i}", "robot", ("lift",), node="dock", state_period_s=0.5)
             for i in range(3)]
    return FleetRunner(F, specs, port=port)


def _agv(port: int) -> AgvRunner:
    return run_agv("127.0.0.1", port, "acme", "agv1", node_id="dock", x=0.0, y=0.0,
                   map_id="demo_floor", speed=10.0, action_s=0.2, state_interval_s=1.0)


def _stored(edge: Edge) -> list[Event]:
    """Every event in the edge's store now (a RocksDB secondary: the edge may be running)."""
    store = EventStore(store_path(edge.data), F, read_only=True)
    try:
        return list(store.read())
    finally:
        store.close()


def _wait_completed(edge: Edge, workflows: set[str], timeout: float) -> list[Event]:
    deadline = time.monotonic() + timeout
    while True:
        events = _stored(edge)
        done = {e.workflow_id for e in events if e.kind == "workflow_completed"}
        if workflows <= done:
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"not completed: {sorted(workflows - done)}; last events "
                                 f"{[(e.kind, e.workflow_id) for e in events[-12:]]}")
        time.sleep(0.5)


def _send(hub: HubClient, wid: str, template: str) -> tuple[str, Future[EdgeEvent]]:
    cmd = HubCommand(command_id=f"c-{wid}", action="create_workflow",
                     args={"template": template, "workflow_id": wid})
    return cmd.command_id, hub.send(F, cmd)


def _wave(hub: HubClient, n: int, vda: bool, tag: str) -> dict[str, Future[EdgeEvent]]:
    """``n`` native workflows (and one VDA workflow if ``vda``) sent at once."""
    sent = dict(_send(hub, f"w-{tag}-{i}", "e2e_pick") for i in range(n))
    if vda:
        sent.update([_send(hub, f"w-{tag}-vda", "e2e_vda")])
    return sent


def _check_exactly_once(events: list[Event], commands: set[str], workflows: set[str]) -> None:
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    replies = Counter(e.data["cmd"] for e in events if e.kind == "command_reply")
    assert {c: replies[c] for c in commands} == dict.fromkeys(commands, 1)
    created = Counter(e.workflow_id for e in events if e.kind == "workflow_created")
    assert created == Counter(workflows)
    completed = Counter(e.workflow_id for e in events if e.kind == "workflow_completed")
    assert completed == Counter(workflows)
    done = Counter((e.workflow_id, e.data.get("step")) for e in events if e.kind == "step_done")
    assert done and set(done.values()) == {1}, done


def _run(broker: Broker, edge: Edge, vda: bool) -> None:
    """Three waves of workflows; the broker is stopped (SIGTERM, then SIGKILL) right after
    the second and third waves are sent, while the first ones are being carried out (and
    once or twice more if the edge happened to answer a wave before its broker went)."""
    with ExitStack() as stack:
        stack.enter_context(_fleet(broker.port))
        agv = _agv(broker.port) if vda else None
        if agv is not None:
            stack.callback(agv.stop)
        hub = stack.enter_context(HubClient("127.0.0.1", broker.port, [F], username=None))
        sent = _wave(hub, 3, vda, "a")
        for f in sent.values():
            f.result(30)
        time.sleep(1.0)  # steps are under way
        for tag, sig in (("b", signal.SIGTERM), ("c", signal.SIGKILL), ("d", signal.SIGKILL),
                         ("e", signal.SIGKILL)):
            if tag in "de" and hub.stats.resent:
                break  # commands were caught in flight: what the test is about
            sent |= _wave(hub, 3, vda, tag)
            time.sleep(0.05)  # the first copies are on their way
            broker.restart(sig)
            time.sleep(1.0)
        for cmd, f in sent.items():
            assert f.result(60).data["cmd"] == cmd
        workflows = {f.result().workflow_id for f in sent.values()}
        assert hub.stats.resent > 0  # commands were in flight when the broker went
        _wait_completed(edge, workflows, 90)  # type: ignore[arg-type]
        if agv is not None:
            assert agv.client.is_connected() and agv.faults == []
    edge.signal(signal.SIGTERM)
    assert edge.wait() == 0
    _check_exactly_once(_stored(edge), set(sent), workflows)  # type: ignore[arg-type]
    assert "disconnected from the broker" in edge.output()


def test_native_workflows_survive_broker_restarts(broker: Broker, edge: Edge) -> None:
    """Native agents and hub commands across two broker restarts: each workflow is created
    once and completes, each command is applied once, seqs stay contiguous."""
    _run(broker, edge, vda=False)


@pytest.mark.parametrize("broker", ["mosquitto", "amqtt"], indirect=True)
def test_vda_workflows_survive_broker_restarts(broker: Broker, edge: Edge) -> None:
    """The same with a VDA 5050 test AGV carrying a workflow of every wave."""
    _run(broker, edge, vda=True)
