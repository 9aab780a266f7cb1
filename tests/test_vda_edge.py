"""Through the edge (``fleetflow edge --vda`` as its own process, on a real Mosquitto): the
hub's ``pause_workflow``, ``resume_workflow`` and ``cancel_workflow`` reach a VDA 5050 test
AGV as ``startPause``, ``stopPause`` and ``cancelOrder``, and the AGV really pauses, drives
on and stops, whichever key it reads instant actions from (the document's ``actions``, or
``instantActions`` as the early 2.0 draft schema that some fielded 2.0 AGVs follow)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agents_sim.vda_agv import AgvModel, AgvRunner, run_agv
from broker import stop_process
from topics import (
    EdgeEvent,
    ErrorReport,
    HubCommand,
    decode,
    decode_edge_event,
    decode_edge_status,
    encode,
)

pytestmark = pytest.mark.mosquitto
F = "vda"
ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
# dock → a1 → … → a4 → pack: 25 m at 1 m/s, time enough to pause, resume and cancel.
TEMPLATE = """\
name: vda_haul
steps:
  - {id: haul, kind: robot, capabilities: [transport], location: pack}
"""


class Hub:
    """Stands in for the hub: sends ``edge/cmd`` and records ``edge/events`` and status."""

    def __init__(self, port: int) -> None:
        self.events: list[EdgeEvent] = []
        self.errors: list[ErrorReport] = []
        """What the edge reported on ``edge/errors``."""
        self.online = False
        self.edge: subprocess.Popen[bytes] | None = None
        """The edge process it watches (set by the fixture)."""
        self._cond = threading.Condition()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hub")
        self.client.on_connect = lambda c, *_: c.subscribe(f"fleetflow/v1/{F}/edge/#", qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "the hub did not subscribe"

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        kind = msg.topic.rsplit("/", 1)[-1]
        with self._cond:
            if kind == "events":
                self.events.append(decode_edge_event(bytes(msg.payload)))
            elif kind == "status":
                self.online = decode_edge_status(bytes(msg.payload)).online
            elif kind == "errors":
                self.errors.append(decode(bytes(msg.payload), ErrorReport))
            self._cond.notify_all()

    def wait_for(self, what: Callable[[Hub], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not what(self):
                left = deadline - time.monotonic()
                assert left > 0, f"timed out; events {self.kinds()[-15:]}"
                self._cond.wait(min(left, 0.2))

    def kinds(self, workflow_id: str | None = None) -> list[str]:
        return [e.kind for e in self.events if workflow_id is None or e.workflow_id == workflow_id]

    def command(self, action: str, **args: Any) -> None:
        cmd = HubCommand(command_id=f"{action}-{time.monotonic_ns()}", action=action,  # type: ignore[arg-type]
                         args=args)
        self.client.publish(f"fleetflow/v1/{F}/edge/cmd", encode(cmd), qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def edge_and_hub(mosquitto_port: int, tmp_path: Path) -> Iterator[Hub]:
    """An edge running the VDA master on the demo map, online, and the hub watching it."""
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "vda_haul.yaml").write_text(TEMPLATE)
    hub = Hub(mosquitto_port)
    with open(tmp_path / "edge.log", "wb") as log:
        edge = subprocess.Popen(
            [PYTHON, "-m", "fleetflow", "edge", "--facility", F, "--broker",
             f"mqtt://127.0.0.1:{mosquitto_port}", "--data", str(tmp_path / "data"),
             "--templates", str(templates), "--map", str(ROOT / "maps" / "demo.yaml"),
             "--metrics-port", "0", "--vda"], cwd=ROOT, stdout=log, stderr=log)
    hub.edge = edge
    try:
        hub.wait_for(lambda h: h.online, 60)
        yield hub
    finally:
        hub.close()
        stop_process(edge, 10)


def until(runner: AgvRunner, check: Callable[[AgvModel], bool], what: str,
          timeout: float = 20.0) -> None:
    """Poll ``check`` on the AGV's own model (under its lock) until it holds."""
    deadline = time.monotonic() + timeout
    while True:
        with runner.lock:
            if check(runner.model):
                return
            errors = list(runner.model.errors)
        assert time.monotonic() < deadline, f"the AGV never {what}; its errors: {errors}"
        time.sleep(0.05)


def instant(model: AgvModel, action_type: str) -> list[str]:
    """Statuses of the instant actions of one type the AGV holds."""
    return [a.status for a in model.actions.values()
            if a.instant and a.action_type == action_type]


@pytest.mark.parametrize(("version", "instant_key"), [
    ("2.0.0", "instantActions"),  # the early 2.0 draft schema, as fielded AGVs read it
    ("2.0.0", "actions"),         # the 2.0.0 document and schema
    ("2.1.0", "actions"),
])
def test_hub_pauses_resumes_and_cancels_a_vda_agv(edge_and_hub: Hub, mosquitto_port: int,
                                                  version: str, instant_key: str) -> None:
    """Pause stops the AGV, resume drives it on, cancel stops it short of the goal."""
    hub = edge_and_hub
    runner = run_agv("127.0.0.1", mosquitto_port, "acme", "agv1", version, node_id="dock",
                     x=0.0, y=0.0, map_id="demo_floor", speed=1.0, state_interval_s=1.0,
                     instant_key=instant_key)
    try:
        hub.wait_for(lambda h: "agent_joined" in h.kinds(), 30)
        hub.command("create_workflow", template="vda_haul", workflow_id="w1")
        until(runner, lambda m: m.driving, "started driving")

        hub.command("pause_workflow", workflow_id="w1")
        hub.wait_for(lambda h: "workflow_pausing" in h.kinds("w1"))
        until(runner, lambda m: m.paused and not m.driving, "paused")
        hub.wait_for(lambda h: "workflow_paused" in h.kinds("w1"))  # once the AGV confirmed
        with runner.lock:
            x = runner.model.x
            assert instant(runner.model, "startPause") == ["FINISHED"]
        time.sleep(0.5)
        with runner.lock:  # paused, it stands still mid-order
            assert runner.model.x == x and runner.model.nodes != []

        hub.command("resume_workflow", workflow_id="w1")
        until(runner, lambda m: not m.paused and m.x > x + 0.2, "drove on")
        with runner.lock:
            assert instant(runner.model, "stopPause") == ["FINISHED"]

        hub.command("cancel_workflow", workflow_id="w1")
        hub.wait_for(lambda h: "workflow_cancelling" in h.kinds("w1"))
        until(runner, lambda m: instant(m, "cancelOrder") == ["FINISHED"], "cancelled")
        hub.wait_for(lambda h: "workflow_cancelled" in h.kinds("w1"))
        assert "command_refused" not in hub.kinds("w1")
        with runner.lock:
            assert runner.model.nodes == [] and runner.model.last_node_id != "pack"
            x, stopped_at = runner.model.x, runner.model.last_node_id
        time.sleep(0.5)
        with runner.lock:  # it stays where the cancel stopped it, and refused nothing
            assert (runner.model.x, runner.model.last_node_id) == (x, stopped_at)
            assert not runner.model.driving and runner.model.errors == []
        assert "step_done" not in hub.kinds("w1") and runner.faults == []
    finally:
        runner.stop()


def test_an_agv_off_the_map_fails_its_step_and_the_edge_serves_on(edge_and_hub: Hub,
                                                                  mosquitto_port: int) -> None:
    """A step for an AGV standing off the map fails with a clear message; the edge runs on."""
    hub = edge_and_hub
    agv = subprocess.Popen(  # as the docs once started it: on n0, which the demo map lacks
        [PYTHON, "-m", "agents_sim.vda_agv", "--port", str(mosquitto_port), "--manufacturer",
         "acme", "--serial", "agv1", "--node", "n0", "--x", "0", "--y", "0", "--version",
         "2.0.0", "--instant-key", "instantActions", "--state-interval", "1"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        hub.wait_for(lambda h: "agent_updated" in h.kinds(), 30)  # its node is known
        hub.command("create_workflow", template="vda_haul", workflow_id="w1")
        hub.wait_for(lambda h: "step_failed" in h.kinds("w1"))
        failed = next(e for e in hub.events if e.kind == "step_failed")
        assert (failed.data["step"], failed.data["error"], failed.data["message"]) == (
            "haul", "no_route", "agv1 stands on n0, which is not on map demo_floor")
        hub.command("cancel_workflow", workflow_id="w1")
        hub.wait_for(lambda h: "workflow_cancelled" in h.kinds("w1"))
        assert hub.edge is not None and hub.edge.poll() is None, "the edge exited"
        seqs = [e.seq for e in hub.events]
        assert seqs == list(range(1, len(seqs) + 1))
    finally:
        stop_process(agv, 5)



@contextmanager
def driving_agv(hub: Hub, port: int, version: str, refuses: str,
                **options: Any) -> Iterator[AgvRunner]:
    """A test AGV that refuses one instant action type, driving workflow w1's order."""
    runner = run_agv("127.0.0.1", port, "acme", "agv1", version, node_id="dock", x=0.0,
                     y=0.0, map_id="demo_floor", speed=5.0, state_interval_s=1.0, **options)
    with runner.lock:
        runner.model.refuse_instant(refuses)
    try:
        hub.wait_for(lambda h: "agent_joined" in h.kinds(), 30)
        hub.command("create_workflow", template="vda_haul", workflow_id="w1")
        until(runner, lambda m: m.driving, "started driving")
        yield runner
    finally:
        runner.stop()


def test_an_agv_that_refuses_cancel_is_reported_and_its_finished_order_recorded(
        edge_and_hub: Hub, mosquitto_port: int) -> None:
    """An AGV that refuses cancelOrder and drives on: the refusal is an event and an
    edge/errors report, the step is done when the AGV finished it, and only then is the
    workflow cancelled — never recorded cancelled while the AGV drives."""
    hub = edge_and_hub
    with driving_agv(hub, mosquitto_port, "2.0.0", "cancelOrder",
                     instant_key="instantActions") as runner:
        hub.command("cancel_workflow", workflow_id="w1")
        hub.wait_for(lambda h: "command_refused" in h.kinds("w1"))
        assert "workflow_cancelled" not in hub.kinds("w1")
        refused = next(e for e in hub.events if e.kind == "command_refused")
        assert refused.data["agent"] == "agv1" and refused.data["command"] == "cancel"
        hub.wait_for(lambda h: any(r.reason == "command_refused" for r in h.errors))
        hub.wait_for(lambda h: "workflow_cancelled" in h.kinds("w1"), 60)
        kinds = hub.kinds("w1")
        assert kinds.index("command_refused") < kinds.index("step_done") \
            < kinds.index("workflow_cancelled")
        with runner.lock:
            assert runner.model.last_node_id == "pack"  # it did finish the order


def test_an_agv_that_refuses_to_pause_leaves_the_workflow_running(
        edge_and_hub: Hub, mosquitto_port: int) -> None:
    """An AGV that refuses startPause: the workflow is not paused but resumed, the refusal
    is an event and an edge/errors report, and the step completes."""
    hub = edge_and_hub
    with driving_agv(hub, mosquitto_port, "2.1.0", "startPause"):
        hub.command("pause_workflow", workflow_id="w1")
        hub.wait_for(lambda h: "workflow_resumed" in h.kinds("w1"))
        kinds = hub.kinds("w1")
        assert "workflow_paused" not in kinds
        assert kinds.index("workflow_pausing") < kinds.index("command_refused") \
            < kinds.index("workflow_resumed")
        hub.wait_for(lambda h: any(r.reason == "command_refused" for r in h.errors))
        hub.wait_for(lambda h: "workflow_completed" in h.kinds("w1"), 60)
