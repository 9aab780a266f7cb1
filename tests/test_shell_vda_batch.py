"""The edge shell in-process with ``--vda`` on a real Mosquitto, an AGV played by raw VDA 5050
messages: core inputs the master derives while a command's effects are collected (a step
failed because its order cannot be planned) are handled after that command, so a batch's
events reach the store contiguous and in seq order; an input failing halfway is dropped
whole, and the inputs around it stand."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_shell import Peer as ShellPeer

from edge_runtime.shell import EdgeConfig, EdgeRuntime
from edge_runtime.vda5050 import VdaBridge, VdaTranslation

pytestmark = pytest.mark.mosquitto
F = "shellvda"
ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = """\
name: haul
steps:
  - {id: s1, kind: robot, capabilities: [transport], location: pack}
"""
HEADER = {"timestamp": "2026-01-01T00:00:00.000Z", "version": "2.1.0", "manufacturer": "acme",
          "serialNumber": "agv1"}


class Peer(ShellPeer):
    """Hub and AGV at once: records edge/events and edge/errors, publishes raw messages."""

    def __init__(self, port: int) -> None:
        super().__init__(port, F)

    def kinds(self, workflow_id: str) -> list[str]:
        return [e.kind for e in self.events if e.workflow_id == workflow_id]

    def agv_on(self, node: str) -> None:
        """Announce AGV agv1 and have it report standing on ``node``, idle."""
        online = {**HEADER, "headerId": 0, "connectionState": "ONLINE"}
        state = {**HEADER, "headerId": 0, "orderId": "", "orderUpdateId": 0,
                 "lastNodeId": node, "lastNodeSequenceId": 0, "nodeStates": [],
                 "edgeStates": [], "driving": False, "actionStates": [],
                 "batteryState": {"batteryCharge": 80.0, "charging": False},
                 "operatingMode": "AUTOMATIC", "errors": [],
                 "safetyState": {"eStop": "NONE", "fieldViolation": False}}
        for kind, message in (("connection", online), ("state", state)):
            self.client.publish(f"uagv/v2/acme/agv1/{kind}", json.dumps(message),
                                qos=1).wait_for_publish(5)
        self.wait_for(lambda: any(e.kind == "agent_updated" for e in self.events), 30.0)

    def contiguous(self) -> bool:
        seqs = [e.seq for e in self.events]
        return seqs == list(range(1, len(seqs) + 1))


@pytest.fixture
def peer(mosquitto_port: int) -> Iterator[Peer]:
    """A recording peer on the broker."""
    p = Peer(mosquitto_port)
    yield p
    p.client.loop_stop()
    p.client.disconnect()


@pytest.fixture
def edge(mosquitto_port: int, tmp_path: Path) -> Iterator[EdgeRuntime]:
    """A started in-process edge running the VDA master on the demo map."""
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "haul.yaml").write_text(TEMPLATE)
    config = EdgeConfig(facility=F, data_dir=tmp_path / "data", port=mosquitto_port,
                        templates_dir=tmp_path / "templates",
                        map_path=ROOT / "maps" / "demo.yaml", vda=True)
    rt = EdgeRuntime(config)
    rt.start()
    assert rt.wait_ready(10), "the edge did not subscribe"
    yield rt
    rt.request_stop()
    rt.wait()


def test_a_step_failing_at_once_is_committed_after_its_command(edge: EdgeRuntime,
                                                               peer: Peer) -> None:
    """An order that cannot be planned fails its step after the command's events, in order."""
    peer.agv_on("n0")  # not a node of the demo map: planning the order fails at once
    peer.command("c1", "create_workflow", template="haul", workflow_id="w1")
    peer.wait_for(lambda: "step_failed" in peer.kinds("w1"))
    assert peer.kinds("w1")[:5] == ["workflow_created", "workflow_started", "step_assigned",
                                    "command_reply", "step_failed"]
    failed = next(e for e in peer.events if e.kind == "step_failed")
    assert (failed.data["error"], failed.data["message"]) == (
        "no_route", "agv1 stands on n0, which is not on map demo_floor")
    peer.command("c2", "cancel_workflow", workflow_id="w1")
    peer.wait_for(lambda: "workflow_cancelled" in peer.kinds("w1"))
    assert peer.contiguous() and edge.exit_code == 0 and not peer.errors


def test_an_input_failing_halfway_is_dropped_whole(edge: EdgeRuntime, peer: Peer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """An input whose effects fail halfway (a bridge error) leaves no event; the next stands."""
    real = VdaBridge.command

    def command(bridge: VdaBridge, effect: Any, now: float) -> VdaTranslation:
        if getattr(effect.message, "workflow_id", None) == "w-boom":
            raise RuntimeError("injected fault")  # after the command's events were collected
        return real(bridge, effect, now)

    monkeypatch.setattr(VdaBridge, "command", command)
    peer.agv_on("dock")
    peer.command("boom", "create_workflow", template="haul", workflow_id="w-boom")
    peer.wait_for(lambda: bool(peer.errors))
    assert peer.errors[0].reason == "internal_error"
    peer.command("c1", "create_workflow", template="haul", workflow_id="w1")
    peer.wait_for(lambda: "step_assigned" in peer.kinds("w1"))
    assert not peer.kinds("w-boom") and set(edge.core.workflows()) == {"w1"}
    assert peer.contiguous() and edge.exit_code == 0
