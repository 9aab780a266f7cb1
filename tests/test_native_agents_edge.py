"""Simulated native agents work real workflows with a real edge process, on both brokers."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agents_sim.native import AgentSpec, FleetRunner
from bench.wire import Wire, start_broker
from broker import stop_process
from topics import EdgeEvent, HubCommand, decode_edge_event, edge_topic, encode

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

    def create(self, template: str, workflow_id: str, **args: object) -> None:
        self.watch.publish(edge_topic(F, "cmd"), encode(HubCommand(
            command_id=f"create-{workflow_id}", action="create_workflow",
            args={"template": template, "workflow_id": workflow_id, **args})), qos=1)

    def wait_kind(self, kind: str, workflow_id: str | None, timeout: float = 20.0) -> None:
        self.wait_event(lambda e: e.kind == kind and e.workflow_id == workflow_id, timeout,
                        f"no {kind} for {workflow_id}")

    def wait_event(self, match: Callable[[EdgeEvent], bool], timeout: float = 20.0,
                   what: str = "no matching event") -> EdgeEvent:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = next((e for e in self.events if match(e)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                assert left > 0, f"{what}; saw {[e.kind for e in self.events]}"
                self.changed.wait(left)

    def close(self) -> None:
        stop_process(self.process)
        self.watch.close()


@pytest.fixture(params=["mosquitto", "embedded"])
def edge(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EdgeUnderTest]:
    """A broker (Mosquitto or the embedded one) and an edge for f1 with the shipped templates."""
    if request.param == "mosquitto":
        request.getfixturevalue("mosquitto_bin")  # skips (or fails in CI) without it
    with start_broker(request.param, tmp_path) as port:
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


def test_every_shipped_template_completes(edge: EdgeUnderTest) -> None:
    """Robots, people and an AI agent carry every shipped template (both decision branches)."""
    robot = ("tote_carrier", "shelf_lift", "camera", "pallet_jack")
    specs = [
        AgentSpec("amr-1", kind="robot", capabilities=robot, speed=60, state_period_s=0.5),
        AgentSpec("amr-2", kind="robot", capabilities=robot, speed=60, state_period_s=0.5),
        AgentSpec("tech-1", kind="human", capabilities=("picking", "fitter", "rework"),
                  speed=60, state_period_s=0.5),
        AgentSpec("tech-2", kind="human", capabilities=("picking", "fitter", "rework"),
                  speed=60, state_period_s=0.5),
        AgentSpec("vision-1", kind="ai", capabilities=("defect_detection",), speed=60,
                  state_period_s=0.5),
    ]
    with FleetRunner(F, specs, port=edge.port) as fleet:
        edge.wait_event(lambda e: e.kind == "agent_joined" and e.data["agent"] == "vision-1")
        edge.create("pick_and_deliver", "pick")
        edge.create("robot_person_handover", "handover")
        edge.create("ai_inspection", "inspect", data={"min_score": 0.0})  # always ships
        edge.create("ai_inspection", "rework", data={"min_score": 1.01})  # always reworked
        for workflow_id in ("pick", "handover", "inspect", "rework"):
            edge.wait_kind("workflow_completed", workflow_id, timeout=60)
        assert fleet.errors == []
    skipped = {(e.workflow_id, e.data["step"]) for e in edge.events if e.kind == "step_skipped"}
    assert ("inspect", "rework") in skipped and ("rework", "ship") in skipped
    assigned = {e.data["agent"] for e in edge.events if e.kind == "step_assigned"}
    assert "vision-1" in assigned  # every kind of agent did work
    assert assigned & {"amr-1", "amr-2"} and assigned & {"tech-1", "tech-2"}


def test_agent_killed_mid_step_is_lost_and_another_finishes(edge: EdgeUnderTest) -> None:
    """A robot dies mid-step: its will marks it lost, and the step finishes on another robot."""
    specs = [
        AgentSpec("picker-1", kind="human", capabilities=("picking",), speed=60,
                  state_period_s=0.5),
        AgentSpec("amr-1", kind="robot", capabilities=("tote_carrier",), speed=1,
                  state_period_s=0.5),
        AgentSpec("amr-2", kind="robot", capabilities=("tote_carrier",), speed=1,
                  state_period_s=0.5),
    ]
    with FleetRunner(F, specs, port=edge.port) as fleet:
        edge.wait_event(lambda e: e.kind == "agent_joined" and e.data["agent"] == "amr-2")
        edge.create("pick_and_deliver", "wf-lost")
        started = edge.wait_event(
            lambda e: e.kind == "step_started" and e.data.get("step") == "load", 30)
        victim = next(e.data["agent"] for e in edge.events
                      if e.kind == "step_assigned" and e.data["step"] == "load")
        fleet.kill(victim)
        edge.wait_event(lambda e: e.kind == "agent_lost" and e.data["agent"] == victim, 30)
        edge.wait_kind("workflow_completed", "wf-lost", timeout=60)
    survivor = ({"amr-1", "amr-2"} - {victim}).pop()
    assert started.seq > 0
    load_done = [e for e in edge.events if e.kind == "step_done" and e.data["step"] == "load"]
    assert len(load_done) == 1
    reassigned = [e.data["agent"] for e in edge.events
                  if e.kind == "step_assigned" and e.data["step"] == "load"]
    assert reassigned == [victim, survivor]
