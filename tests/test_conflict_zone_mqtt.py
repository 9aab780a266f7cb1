"""Over real MQTT, both brokers: a person entering a robot's exclusive zone (the demo map's
cold room) pauses the robot in the same batch that records the conflict, and the robot is
told to resume once the person left (docs/coordination.md, "Safety conflicts")."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.wire import Wire, start_broker
from broker import stop_process
from topics import (
    AgentCommand,
    AgentConn,
    AgentState,
    EdgeEvent,
    HubCommand,
    Message,
    Pause,
    Resume,
    agent_topic,
    decode,
    decode_edge_event,
    decode_edge_status,
    edge_topic,
    encode,
)

F = "f1"
ROOT = Path(__file__).resolve().parent.parent


class Scene:
    """An edge on the demo map, a robot and a person as plain MQTT clients, and a watch."""

    def __init__(self, port: int, data: Path, edge_args: Sequence[str] = ()) -> None:
        self.port = port
        self.events: list[EdgeEvent] = []
        self.commands: list[Message] = []
        self.changed = threading.Condition()
        self.online = False
        self.watch = Wire(port, "watch", [(edge_topic(F, "events"), 1),
                                          (edge_topic(F, "status"), 1)], self._on_event)
        self.robot = Wire(port, "r1", [(agent_topic(F, "r1", "cmd"), 1)], self._on_command)
        self.person = Wire(port, "h1", [])
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fleetflow", "edge", "--facility", F, "--broker",
             f"mqtt://127.0.0.1:{port}", "--data", str(data), "--map",
             str(ROOT / "maps" / "demo.yaml"), "--log-level", "WARNING", *edge_args],
            stdin=subprocess.DEVNULL)

    def _on_event(self, topic: str, payload: bytes, _at: float) -> None:
        with self.changed:
            if topic.endswith("/status"):
                self.online = decode_edge_status(payload).online
            else:
                self.events.append(decode_edge_event(payload))
            self.changed.notify_all()

    def _on_command(self, _topic: str, payload: bytes, _at: float) -> None:
        with self.changed:
            self.commands.append(decode(payload, AgentCommand))
            self.changed.notify_all()

    def announce(self, agent: Wire, agent_id: str, kind: str, node: str) -> None:
        agent.publish(agent_topic(F, agent_id, "conn"), encode(AgentConn(
            agent_id=agent_id, online=True, kind=kind, liveness_s=60)), qos=1)  # type: ignore[arg-type]
        self.move(agent, agent_id, node)

    def move(self, agent: Wire, agent_id: str, node: str) -> None:
        agent.publish(agent_topic(F, agent_id, "state"), encode(AgentState(
            agent_id=agent_id, ts=time.time(), node=node)), qos=0)

    def wait(self, check: Callable[[Scene], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not check(self):
                left = deadline - time.monotonic()
                assert left > 0, f"{what}; events {[e.kind for e in self.events][-12:]}"
                self.changed.wait(min(left, 0.2))

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def hub_command(self, command_id: str, action: str, **args: object) -> None:
        """Send a hub command on ``edge/cmd`` (QoS 1) as the hub would, once."""
        self.watch.publish(edge_topic(F, "cmd"), encode(HubCommand(
            command_id=command_id, action=action, args=args)),  # type: ignore[arg-type]
            qos=1).wait_for_publish(5)

    def close(self) -> None:
        stop_process(self.process)
        for wire in (self.watch, self.robot, self.person):
            wire.close()


@contextmanager
def running_scene(request: pytest.FixtureRequest, tmp_path: Path,
                  edge_args: Sequence[str] = ()) -> Iterator[Scene]:
    """A broker (``request.param``: Mosquitto or the embedded one) and an edge for f1 on the
    demo map (with ``edge_args``), online."""
    if request.param == "mosquitto":
        request.getfixturevalue("mosquitto_bin")
    with start_broker(request.param, tmp_path) as port:
        s = Scene(port, tmp_path / "data", edge_args)
        try:
            s.wait(lambda x: x.online, "the edge came online", 60)
            yield s
        finally:
            s.close()


@pytest.fixture(params=["mosquitto", "embedded"])
def scene(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scene]:
    """A broker (Mosquitto or the embedded one) and an edge for f1 on the demo map."""
    with running_scene(request, tmp_path) as s:
        yield s


def test_a_person_in_the_robots_exclusive_zone_pauses_it_until_they_leave(
        scene: Scene) -> None:
    """Pause in the conflict's batch; resume once the person is out of the cold room."""
    scene.announce(scene.robot, "r1", "robot", "cold1")
    scene.announce(scene.person, "h1", "human", "door")
    scene.wait(lambda s: s.kinds().count("agent_joined") == 2, "both agents joined")
    scene.move(scene.person, "h1", "cold2")
    scene.wait(lambda s: any(isinstance(c, Pause) for c in s.commands), "the robot paused")
    scene.wait(lambda s: "agent_stopped" in s.kinds(), "the stop recorded")
    detected = next(e for e in scene.events if e.kind == "conflict_detected")
    stopped = next(e for e in scene.events if e.kind == "agent_stopped")
    assert detected.data["rule"] == "person_in_robot_zone"
    assert detected.data["resource"] == "cold_room"
    assert stopped.seq == detected.seq + 1  # the same batch: the conflict and the stop
    assert stopped.data == {"agent": "r1", "conflict": detected.data["id"],
                            "cmd": stopped.data["cmd"]}
    assert not any(isinstance(c, Resume) for c in scene.commands)
    scene.move(scene.person, "h1", "door")
    scene.wait(lambda s: any(isinstance(c, Resume) for c in s.commands), "the robot resumed")
    scene.wait(lambda s: "conflict_resolved" in s.kinds(), "the conflict resolved")
    resolved = next(e for e in scene.events if e.kind == "conflict_resolved")
    assert resolved.data["id"] == detected.data["id"]
