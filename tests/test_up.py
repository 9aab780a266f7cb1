"""`fleetflow up` starts the whole system, serves, and stops it cleanly; its scripted planner."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from agents_sim.planner import DemoPlanner, HubClient, HubCommandRefused, wait_edge_online
from bench.wire import Wire
from broker import free_port, mqtt_ready
from topics import (
    EdgeEvent,
    EdgeStatus,
    ErrorReport,
    HubCommand,
    decode_hub_command,
    edge_topic,
    encode,
)

ROOT = Path(__file__).resolve().parent.parent


def _up(tmp_path: Path, port: int, metrics: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fleetflow", "up", "--port", str(port), "--metrics-port",
         str(metrics), "--data", str(tmp_path / "ff"), *extra],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True)


def _metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name))


def test_up_runs_broker_edge_and_fleet_and_ctrl_c_stops_all(tmp_path: Path) -> None:
    """Every part comes up and works demo workflows; SIGINT stops them all, exit 0."""
    port, metrics = free_port(), free_port()
    up = _up(tmp_path, port, metrics, "--agents", "4", "--workflow-every", "0.5")
    try:
        assert up.stdout is not None
        lines = []
        for line in up.stdout:
            lines.append(line)
            if line.startswith("ready"):
                break
        text = "".join(lines)
        assert f"mqtt://127.0.0.1:{port}" in text
        assert f"http://127.0.0.1:{metrics}/metrics" in text
        assert "4 simulated agents" in text
        deadline = time.monotonic() + 30
        while _metric(metrics, 'fleetflow_edge_inputs_total{kind="step_accepted"}') < 2:
            assert time.monotonic() < deadline, "the fleet did no work"
            time.sleep(0.5)
        up.send_signal(signal.SIGINT)
        assert up.wait(60) == 0
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert not mqtt_ready("127.0.0.1", port), "the broker outlived `up`"
    with socket.socket() as s:  # the edge's metrics port is free again (TIME_WAIT aside)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", metrics))
    edge_log = (tmp_path / "ff" / "logs" / "edge-demo.log").read_text()
    assert "stopped at seq" in edge_log and "disconnected from the broker" not in edge_log


def test_up_with_broker_port_taken_says_one_line(tmp_path: Path) -> None:
    """A port already in use: one line naming the port and the flag, exit 2, no traceback."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        up = _up(tmp_path, port, free_port(), "--agents", "0")
        _, err = up.communicate(timeout=60)
    assert up.returncode == 2
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert str(port) in err and "--port" in err


def test_killed_up_leaves_no_broker_or_edge_behind(tmp_path: Path) -> None:
    """SIGKILL of `up` itself: its broker and edge get SIGTERM and free their ports."""
    port, metrics = free_port(), free_port()
    up = _up(tmp_path, port, metrics, "--agents", "0")
    try:
        assert up.stdout is not None
        for line in up.stdout:
            if line.startswith("ready"):
                break
        assert mqtt_ready("127.0.0.1", port)
        up.kill()
        up.wait()
        deadline = time.monotonic() + 20
        while mqtt_ready("127.0.0.1", port):
            assert time.monotonic() < deadline, "the broker outlived a killed `up`"
            time.sleep(0.2)
        edge_log = tmp_path / "ff" / "logs" / "edge-demo.log"
        while "stopped at seq" not in edge_log.read_text():
            assert time.monotonic() < deadline, "the edge outlived a killed `up`"
            time.sleep(0.2)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


def test_demo_planner_creates_workflows_round_robin() -> None:
    """Workflow n goes to facility n and template n (modulo), with fresh ids per planner."""
    planner = DemoPlanner("127.0.0.1", 1, ["f1", "f2"], ["a", "b", "c"], every_s=1.0)
    made = [planner.command(n, 0.0) for n in (1, 2, 3)]
    assert [t for t, _ in made] == ["fleetflow/v1/f2/edge/cmd", "fleetflow/v1/f1/edge/cmd",
                                    "fleetflow/v1/f2/edge/cmd"]
    assert [c.args["template"] for _, c in made] == ["b", "c", "a"]
    assert {c.action for _, c in made} == {"create_workflow"}
    assert made[0][1].command_id == f"demo-{planner.run}-1"
    assert DemoPlanner("127.0.0.1", 1, ["f1"], ["a"], every_s=1.0).run != planner.run


@pytest.mark.mosquitto
def test_planner_waits_for_the_edge_and_sends_its_commands(mosquitto_port: int) -> None:
    """``wait_edge_online`` sees a retained online status (and gives up without one);
    ``DemoPlanner`` publishes decodable hub commands on the edge's ``cmd`` topic."""
    port = mosquitto_port
    assert not wait_edge_online("127.0.0.1", port, "f1", username=None, timeout=0.5)
    assert not wait_edge_online("127.0.0.1", port, "f1", username=None, timeout=30,
                                give_up=lambda: True)
    status = Wire(port, "status", [])
    status.publish(edge_topic("f1", "status"), encode(EdgeStatus(facility="f1", online=True)),
                   qos=1, retain=True).wait_for_publish(5)
    status.close()
    assert wait_edge_online("127.0.0.1", port, "f1", username=None, timeout=10)
    hub = Wire(port, "edge-f1", [(edge_topic("f1", "cmd"), 1)])
    try:
        with DemoPlanner("127.0.0.1", port, ["f1"], ["t"], every_s=0.05, username=None):
            topic, payload, _ = hub.inbox.get(timeout=10)
        assert topic == edge_topic("f1", "cmd")
        command = decode_hub_command(payload)
        assert command.action == "create_workflow" and command.args["template"] == "t"
    finally:
        hub.close()


class FakeEdge:
    """Plays the edge of f1 for the hub client: receives hub commands, and publishes
    replies, error reports and its status when told."""

    def __init__(self, port: int) -> None:
        self.wire = Wire(port, "fake-edge-f1", [(edge_topic("f1", "cmd"), 1)])

    def next_command(self, timeout: float) -> HubCommand:
        _, payload, _ = self.wire.inbox.get(timeout=timeout)
        return decode_hub_command(payload)

    def drain(self) -> int:
        """How many commands arrived so far (forgetting them)."""
        n = 0
        while not self.wire.inbox.empty():
            self.wire.inbox.get()
            n += 1
        return n

    def reply(self, command: HubCommand, seq: int = 1,
              result: dict[str, Any] | None = None) -> None:
        event = EdgeEvent(seq=seq, hlc=0, facility="f1", kind="command_reply", workflow_id="wf",
                          data={"cmd": command.command_id, "action": command.action,
                                "result": result or {"state": "running"}})
        self.wire.publish(edge_topic("f1", "events"), encode(event), qos=1).wait_for_publish(5)

    def refuse(self, command: HubCommand) -> None:
        report = ErrorReport(reason="template", topic=edge_topic("f1", "cmd"),
                             message=f"command {command.command_id}: no template 'nope'")
        self.wire.publish(edge_topic("f1", "errors"), encode(report)).wait_for_publish(5)

    def status(self, online: bool) -> None:
        self.wire.publish(edge_topic("f1", "status"), encode(EdgeStatus(facility="f1",
                          online=online)), qos=1, retain=True).wait_for_publish(5)

    def close(self) -> None:
        self.wire.close()


def _create(command_id: str) -> HubCommand:
    return HubCommand(command_id=command_id, action="create_workflow",
                      args={"template": "t", "workflow_id": "wf"})


@pytest.mark.mosquitto
def test_hub_client_resends_a_command_until_its_reply(mosquitto_port: int) -> None:
    """An unanswered hub command comes again after about 1 s; the command_reply settles it
    and the resends stop."""
    edge = FakeEdge(mosquitto_port)
    try:
        with HubClient("127.0.0.1", mosquitto_port, ["f1"], username=None) as hub:
            reply = hub.send("f1", _create("h1"))
            first = edge.next_command(timeout=5)
            t0 = time.monotonic()
            assert edge.next_command(timeout=5) == first and time.monotonic() - t0 > 0.5
            edge.reply(first)
            event = reply.result(timeout=5)
            assert event.kind == "command_reply" and event.data["cmd"] == "h1"
            edge.drain()
            time.sleep(3.5)  # the next resend was due ~3 s after the first send
            assert edge.drain() == 0 and hub.pending() == 0
            assert hub.stats.replied == 1 and hub.stats.resent >= 1
    finally:
        edge.close()


@pytest.mark.mosquitto
def test_hub_client_resends_at_once_when_the_edge_comes_online(mosquitto_port: int) -> None:
    """A command waiting on an offline edge goes again as soon as the edge says online."""
    edge = FakeEdge(mosquitto_port)
    edge.status(False)
    try:
        with HubClient("127.0.0.1", mosquitto_port, ["f1"], username=None) as hub:
            hub.send("f1", _create("h2"))
            edge.next_command(timeout=5)
            time.sleep(3.5)  # resends at ~1 and ~3 s; the next is due at ~7 s
            edge.drain()
            edge.status(True)
            t0 = time.monotonic()
            assert edge.next_command(timeout=2).command_id == "h2"
            assert time.monotonic() - t0 < 2.0
    finally:
        edge.close()


@pytest.mark.mosquitto
def test_hub_client_command_returns_the_reply_or_raises_the_refusal(mosquitto_port: int
                                                                     ) -> None:
    """``HubClient.command`` gives the reply event; an error report naming the command, or
    a reply that says it was refused (a stale command), makes it raise ``HubCommandRefused``."""
    edge = FakeEdge(mosquitto_port)

    def answer() -> None:  # replies to ok-*, refuses bad-* and stale-*, ignores resends
        done: set[str] = set()
        while done != {"ok-1", "bad-1", "stale-1"}:
            command = edge.next_command(timeout=10)
            if command.command_id not in done:
                done.add(command.command_id)
                if command.command_id == "stale-1":
                    edge.reply(command, 2, {"refused": "stale_command", "error": "seq 1 < 5"})
                else:
                    (edge.reply if command.command_id == "ok-1" else edge.refuse)(command)

    helper = threading.Thread(target=answer, daemon=True)
    try:
        with HubClient("127.0.0.1", mosquitto_port, ["f1"], username=None) as hub:
            helper.start()
            event = hub.command("f1", "create_workflow", {"template": "t", "workflow_id": "a"},
                                command_id="ok-1")
            assert event.data["cmd"] == "ok-1"
            with pytest.raises(HubCommandRefused) as refused:
                hub.command("f1", "create_workflow", {"template": "nope"}, command_id="bad-1")
            assert refused.value.report.reason == "template" and hub.pending() == 0
            with pytest.raises(HubCommandRefused, match="seq 1 < 5") as refused:
                hub.command("f1", "pause_workflow", {"workflow_id": "a", "expected_seq": 1},
                            command_id="stale-1")
            assert refused.value.report.reason == "stale_command" and hub.pending() == 0
    finally:
        helper.join(5)
        edge.close()
