"""The MQTT stand-in hub (``agents_sim.mqtt_hub``) that tests of the edge's command delivery
use: ``wait_edge_online``, and ``HubClient``'s resends, replies and refusals."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from agents_sim.mqtt_hub import HubClient, HubCommandRefused, wait_edge_online
from bench.wire import Wire
from topics import (
    EdgeEvent,
    EdgeStatus,
    ErrorReport,
    HubCommand,
    decode_hub_command,
    edge_topic,
    encode,
)


@pytest.mark.mosquitto
def test_wait_edge_online_sees_the_retained_status(mosquitto_port: int) -> None:
    """``wait_edge_online`` sees a retained online status, and gives up without one."""
    port = mosquitto_port
    assert not wait_edge_online("127.0.0.1", port, "f1", username=None, timeout=0.5)
    assert not wait_edge_online("127.0.0.1", port, "f1", username=None, timeout=30,
                                give_up=lambda: True)
    status = Wire(port, "status", [])
    status.publish(edge_topic("f1", "status"), encode(EdgeStatus(facility="f1", online=True)),
                   qos=1, retain=True).wait_for_publish(5)
    status.close()
    assert wait_edge_online("127.0.0.1", port, "f1", username=None, timeout=10)


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
