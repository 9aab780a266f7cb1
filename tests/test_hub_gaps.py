"""Gap detection and duplicates, driven precisely: a real broker, events made by a real
``Core`` (the edge's engine), published by the test in the order it chooses, and the hub's
``replay`` requests read off ``edge/cmd``."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from hub_rig import hub_config, running_hub, wait_until, write_templates
from paho.mqtt.enums import CallbackAPIVersion

from cloud_hub import Hub, NotFound
from edge_runtime.core import Append, Core
from edge_runtime.templates import load_templates
from edge_runtime.testing import ScriptedFleet
from topics import (
    AgentState,
    EdgeStatus,
    HubCommand,
    decode_hub_command,
    edge_topic,
    encode,
    pack_edge_events,
)

F = "hall-g"


class Peer:
    """Publishes a facility's events and status; records the hub's commands to it."""

    def __init__(self, port: int) -> None:
        self.commands: queue.SimpleQueue[HubCommand] = queue.SimpleQueue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.on_connect = lambda c, *_: c.subscribe(edge_topic(F, "cmd"), qos=1)
        self.client.on_message = lambda _c, _u, m: self.commands.put(
            decode_hub_command(bytes(m.payload)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def status(self, high_water: int) -> None:
        msg = EdgeStatus(facility=F, online=True, high_water_seq=high_water, ts=time.time())
        info = self.client.publish(edge_topic(F, "status"), encode(msg), qos=1, retain=True)
        info.wait_for_publish(5)

    def events(self, payloads: list[bytes]) -> None:
        for p in payloads:
            self.client.publish(edge_topic(F, "events"), p, qos=1).wait_for_publish(5)

    def replay_request(self, timeout: float = 10.0) -> HubCommand:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            cmd = self.commands.get(timeout=end - time.monotonic())
            if cmd.action == "replay":
                return cmd
        raise AssertionError("no replay request")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def payloads(tmp_path: Path) -> list[bytes]:
    """The ``edge/events`` payloads of one workflow run by a real core."""
    fleet = ScriptedFleet(Core(F, load_templates(write_templates(tmp_path))))
    fleet.agent("r0", "robot", ["lift"])
    fleet.create("hub_pick", "w1")
    fleet.run()
    return pack_edge_events([e.event for e in fleet.effects if isinstance(e, Append)], F)


@pytest.fixture
def rig(tmp_path: Path, mosquitto_port: int) -> Iterator[tuple[Hub, Peer]]:
    peer = Peer(mosquitto_port)
    try:
        templates = write_templates(tmp_path)
        with running_hub(hub_config(tmp_path, mosquitto_port, templates)) as hub:
            yield hub, peer
    finally:
        peer.close()


def _applied(hub: Hub) -> int:
    return next((f.applied_seq for f in hub.facilities() if f.id == F), 0)


def test_gap_buffers_asks_replay_and_fills(rig: tuple[Hub, Peer],
                                          payloads: list[bytes]) -> None:
    """Events after a hole wait; the hub asks for a replay from the hole; filling it
    applies everything in order."""
    hub, peer = rig
    peer.status(0)
    peer.events(payloads[:3])
    wait_until(lambda: _applied(hub) == 3, 20)
    peer.events(payloads[5:])
    ask = peer.replay_request()
    assert ask.args == {"from_seq": 4}
    assert _applied(hub) == 3 and hub.system_stats()["queues"]["buffered_events"] > 0
    peer.events(payloads[3:])  # the replay: overlaps what is buffered
    wait_until(lambda: _applied(hub) == len(payloads), 20)
    assert hub.workflow("w1").state == "completed"
    seqs = [c.event.seq for c in hub.changes(limit=1000)]
    assert seqs == list(range(1, len(payloads) + 1))


def test_duplicates_are_dropped(rig: tuple[Hub, Peer], payloads: list[bytes]) -> None:
    """Events sent twice are applied once."""
    hub, peer = rig
    peer.status(0)
    peer.events(payloads)
    peer.events(payloads)
    wait_until(lambda: hub.system_stats()["duplicates_dropped"] == len(payloads), 20)
    assert [c.event.seq for c in hub.changes(limit=1000)] == list(range(1, len(payloads) + 1))


def test_edge_ahead_of_hub_is_asked_to_replay(rig: tuple[Hub, Peer],
                                             payloads: list[bytes]) -> None:
    """A status with a higher seq than the hub has, and no events: a replay from 1; the
    facility is stale until the events arrive."""
    hub, peer = rig
    peer.status(len(payloads))
    assert peer.replay_request().args == {"from_seq": 1}
    assert all(f.stale and f.lag == len(payloads) for f in hub.facilities() if f.id == F)
    peer.events(payloads)
    wait_until(lambda: any(f.id == F and not f.stale for f in hub.facilities()), 20)


def test_event_the_hub_cannot_apply_stops_that_replica(rig: tuple[Hub, Peer],
                                                      tmp_path: Path) -> None:
    """An event of a template the hub lacks: the replica stops there, says why, and the
    facility stays stale (nothing half-applied)."""
    hub, peer = rig
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.yaml").write_text((tmp_path / "templates" / "hub_pick.yaml").read_text()
                                  .replace("name: hub_pick", "name: unknown_here"))
    fleet = ScriptedFleet(Core(F, load_templates(other)))
    fleet.create("unknown_here", "w1")
    events = [e.event for e in fleet.effects if isinstance(e, Append)]
    peer.status(len(events))
    peer.events(pack_edge_events(events, F))
    errors = wait_until(lambda: hub.system_stats()["replica_errors"], 20)
    assert "unknown_here" in errors[F]
    assert _applied(hub) == 0
    assert all(f.stale for f in hub.facilities() if f.id == F)


def test_conflicts_listed_and_follow_their_status(rig: tuple[Hub, Peer]) -> None:
    """An e-stop conflict shows open at the hub, then resolved once released."""
    hub, peer = rig
    fleet = ScriptedFleet(Core(F))
    fleet.agent("r1", "robot", [])
    fleet.feed(AgentState(agent_id="r1", ts=fleet.now, node="dock", e_stop=True))
    opened = len(fleet.effects)
    fleet.feed(AgentState(agent_id="r1", ts=fleet.now, node="dock", e_stop=False))
    events = [e.event for e in fleet.effects if isinstance(e, Append)]
    first = [e.event for e in fleet.effects[:opened] if isinstance(e, Append)]
    peer.status(0)
    peer.events(pack_edge_events(first, F))
    wait_until(lambda: hub.conflicts(status="open").count == 1, 20)
    [conflict] = hub.conflicts(facility=F).items
    assert conflict.rule == "e_stop" and conflict.participants == ["r1"]
    peer.events(pack_edge_events(events[len(first):], F))
    wait_until(lambda: hub.conflicts(status="resolved").count == 1, 20)
    assert hub.conflicts(status="open").count == 0
    assert [a.id for a in hub.agents(facility=F).items] == ["r1"]


def test_sync_state_asks_the_edge_to_replay(rig: tuple[Hub, Peer],
                                           payloads: list[bytes]) -> None:
    """sync_state asks at once for a replay from the first seq the hub lacks; an unknown
    facility is NotFound and asks nothing."""
    hub, peer = rig
    peer.status(0)
    peer.events(payloads[:4])
    wait_until(lambda: _applied(hub) == 4, 20)
    with pytest.raises(NotFound):
        hub.sync_state("nowhere")
    asked = hub.sync_state(F)
    assert asked["requested"] == [{"facility": F, "from_seq": 5, "edge_seq": 4}]
    assert peer.replay_request().args == {"from_seq": 5}
