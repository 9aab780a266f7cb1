"""Simulated native agents work real workflows with a real edge process (Mosquitto)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents_sim.native import AgentSpec, FleetRunner
from bench._e2e_wire import Wire, start_broker, stop_process
from topics import EdgeEvent, HubCommand, decode_edge_event, edge_topic, encode

pytestmark = pytest.mark.mosquitto
F = "f1"
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


class EdgeUnderTest:
    """A ``python -m fleetflow edge`` process and a watcher of its event stream."""

    def __init__(self, port: int, data: Path) -> None:
        self.port = port
        self.events: list[EdgeEvent] = []
        self.changed = threading.Condition()
        self.watch = Wire(port, "watch", [(edge_topic(F, "events"), 1)], self._on_event)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fleetflow", "edge", "--facility", F, "--broker",
             f"mqtt://127.0.0.1:{port}", "--data", str(data), "--templates", str(TEMPLATES),
             "--log-level", "WARNING"], stdin=subprocess.DEVNULL)

    def _on_event(self, _topic: str, payload: bytes, _at: float) -> None:
        with self.changed:
            self.events.append(decode_edge_event(payload))
            self.changed.notify_all()

    def create(self, template: str, workflow_id: str) -> None:
        self.watch.publish(edge_topic(F, "cmd"), encode(HubCommand(
            command_id=f"create-{workflow_id}", action="create_workflow",
            args={"template": template, "workflow_id": workflow_id})), qos=1)

    def wait_kind(self, kind: str, workflow_id: str | None, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not any(e.kind == kind and e.workflow_id == workflow_id for e in self.events):
                left = deadline - time.monotonic()
                assert left > 0, f"no {kind} for {workflow_id}; saw {[e.kind for e in self.events]}"
                self.changed.wait(left)

    def close(self) -> None:
        stop_process(self.process)
        self.watch.close()


@pytest.fixture
def edge(mosquitto_bin: str, tmp_path: Path) -> Iterator[EdgeUnderTest]:
    """Mosquitto and an edge for facility f1 with the shipped templates."""
    with start_broker("mosquitto", tmp_path) as port:
        e = EdgeUnderTest(port, tmp_path / "data")
        try:
            yield e
        finally:
            e.close()


def test_person_and_robot_complete_pick_and_deliver(edge: EdgeUnderTest) -> None:
    """A picker and a robot carry a pick_and_deliver workflow to completion."""
    specs = [
        AgentSpec("picker-1", kind="human", capabilities=("picking",), speed=30,
                  state_period_s=0.5),
        AgentSpec("amr-1", kind="robot", capabilities=("tote_carrier",), speed=30,
                  state_period_s=0.5),
    ]
    with FleetRunner(F, specs, port=edge.port) as fleet:
        edge.wait_kind("agent_joined", None)
        edge.create("pick_and_deliver", "wf1")
        edge.wait_kind("workflow_completed", "wf1")
        assert fleet.behaviours["picker-1"].completed == ["wf1/pick"]
        assert fleet.behaviours["amr-1"].completed == ["wf1/load", "wf1/deliver"]
        assert fleet.errors == []


def test_robot_and_person_meet_at_the_sync_point(edge: EdgeUnderTest) -> None:
    """Both participants arrive once at the handover barrier (no retries), are released, and
    the fit follows; the outputs the template wants come from the Assign."""
    specs = [
        AgentSpec("amr-1", kind="robot", capabilities=("shelf_lift",), speed=60,
                  sync_retry_s=None, state_period_s=0.5),
        AgentSpec("tech-1", kind="human", capabilities=("fitter",), speed=60,
                  sync_retry_s=None, state_period_s=0.5),
    ]
    with FleetRunner(F, specs, port=edge.port) as fleet:
        edge.wait_kind("agent_joined", None)
        edge.create("robot_person_handover", "wf2")
        edge.wait_kind("workflow_completed", "wf2", timeout=30)
        assert "wf2/fit_part" in fleet.behaviours["tech-1"].completed
        assert all(b.waiting == {} for b in fleet.behaviours.values())
        # No re-sends: the robot's early arrival was kept until the technician came.
        arrivals = [e.data["agent"] for e in edge.events if e.kind == "sync_arrived"]
        assert sorted(arrivals) == ["amr-1", "tech-1"]
