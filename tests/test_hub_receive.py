"""The hub's buffered receive path on a real Mosquitto: events arrive whole and in order
however the 64 KiB reads cut them, QoS 0 and 1 alike, and a retained status is seen as
retained."""

from __future__ import annotations

from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from hub_rig import hub_config, running_hub, wait_until
from paho.mqtt.enums import CallbackAPIVersion

from bench.core_transitions import bench_template
from bench.hub import TEMPLATE_YAML
from edge_runtime.core import Append, Core
from edge_runtime.testing import ScriptedFleet
from topics import EdgeStatus, edge_topic, encode, pack_edge_events

pytestmark = pytest.mark.mosquitto

FACILITY = "hall-big"


def _big_stream(workflows: int, blob: int) -> list[bytes]:
    """A real facility stream whose workflows carry three strings of ``blob`` characters
    (under the 16 KiB a string may have) as data."""
    fleet = ScriptedFleet(Core(FACILITY, {"bench_seq": bench_template()}))
    fleet.agent("r1", "robot", ["carry"])
    for i in range(workflows):
        fleet.create("bench_seq", f"big-{i:03d}",
                     data={k: f"{i:03d}" * (blob // 3) for k in ("a", "b", "c")})
        fleet.run()
    events = [e.event for e in fleet.effects if isinstance(e, Append)]
    return pack_edge_events(events, FACILITY)


def _publisher(port: int) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="edge-sim",
                         protocol=mqtt.MQTTv311)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _templates(tmp: Path) -> Path:
    tdir = tmp / "templates"
    tdir.mkdir()
    (tdir / "bench_seq.yaml").write_text(TEMPLATE_YAML)
    return tdir


@pytest.mark.parametrize("qos", [0, 1])
def test_large_events_arrive_whole_and_in_order(mosquitto_port: int, tmp_path: Path,
                                                qos: int) -> None:
    """Events of ~45 KB sent back to back (a QoS 0 or 1 publisher) are all stored, in
    order, their data intact."""
    payloads = _big_stream(12, 15_000)
    assert max(map(len, payloads)) > 45_000
    port = mosquitto_port
    with running_hub(hub_config(tmp_path, port, _templates(tmp_path))) as hub:
        pub = _publisher(port)
        try:
            infos = [pub.publish(edge_topic(FACILITY, "events"), p, qos=qos) for p in payloads]
            for info in infos:
                info.wait_for_publish(10)
            wait_until(lambda: len(hub.changes(facility=FACILITY, limit=10_000))
                       >= len(payloads), 30)
        finally:
            pub.disconnect()
            pub.loop_stop()
        stored = hub.changes(facility=FACILITY, limit=10_000)
    assert [c.event.seq for c in stored] == list(range(1, len(payloads) + 1))
    blobs = {c.event.workflow_id: c.event.data["data"] for c in stored
             if c.event.kind == "workflow_created"}
    assert blobs == {f"big-{i:03d}": {k: f"{i:03d}" * 5000 for k in "abc"} for i in range(12)}


def test_a_retained_status_counts_as_retained(mosquitto_port: int, tmp_path: Path) -> None:
    """An edge's retained online status, there before the hub connects, marks it online."""
    pub = _publisher(mosquitto_port)
    try:
        status = EdgeStatus(facility=FACILITY, online=True, high_water_seq=0, ts=1.0)
        pub.publish(edge_topic(FACILITY, "status"), encode(status), qos=1,
                    retain=True).wait_for_publish(10)
    finally:
        pub.disconnect()
        pub.loop_stop()
    with running_hub(hub_config(tmp_path, mosquitto_port, _templates(tmp_path))) as hub:
        wait_until(lambda: [f.id for f in hub.facilities() if f.online] == [FACILITY], 20)
