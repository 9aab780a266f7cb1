"""VDA 5050 link health end to end: a real test AGV (over MQTT) → a real ``fleetflow edge
--vda`` → a real ``fleetflow hub`` → the dashboard's Agents page.

One Mosquitto on a free port, the edge of ``fa`` mastering VDA 5050 AGVs on the demo map,
the hub serving its API on a free port (``dash_rig.serve`` over ``hub_stack.run_stack``),
and the test AGV ``agv1`` standing on ``dock``. Through the hub's
``GET /facilities/fa/vda`` only: the AGV shows up with its version, ONLINE; the order the
edge sends it for a workflow's step ends acknowledged; a state failing the schema counts in
its ``schema_errors``; and the Agents page shows its row. Every process stops at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from dash_rig import Stack, page, serve, shown, table
from hub_stack import create, wait_for
from paho.mqtt.enums import CallbackAPIVersion

from agents_sim.vda_agv import AgvRunner, run_agv

pytestmark = [pytest.mark.slow, pytest.mark.mosquitto]
VERSION = "2.1.0"
# One robot step the AGV (capability `transport`, the edge's default for VDA 5050 AGVs)
# takes: dock → … → pack, 25 m at 1 m/s, so its order runs long enough to be seen.
TEMPLATES = {"vda_haul.yaml": """\
name: vda_haul
steps:
  - {id: haul, kind: robot, capabilities: [transport], location: pack}
"""}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[Stack]:
    """Mosquitto, the edge of ``fa`` with ``--vda``, and the hub; the page's stack."""
    yield from serve(tmp_path_factory, mosquitto_bin, facilities=("fa",),
                     templates_text=TEMPLATES, edge_flags={"fa": ["--vda"]})


@pytest.fixture(scope="module")
def agv(stack: Stack) -> Iterator[AgvRunner]:
    """The test AGV ``agv1`` on ``dock`` of fa's map (the stack's broker is anonymous)."""
    runner = run_agv("127.0.0.1", stack.mqtt_port, "acme", "agv1", VERSION, node_id="dock",
                     x=0.0, y=0.0, map_id="demo_floor", speed=1.0, state_interval_s=1.0)
    try:
        yield runner
    finally:
        runner.stop()


def _link(stack: Stack) -> dict[str, Any] | None:
    """agv1's link as the hub serves it (None while it is not listed)."""
    with stack.client("viewer") as c:
        r = c.get("/api/v1/facilities/fa/vda")
    assert r.status_code == 200, r.text
    return next((x for x in r.json()["links"] if x["agent_id"] == "agv1"), None)


def _link_where(stack: Stack, check: Any, what: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll the hub until agv1's link satisfies ``check``; that link."""
    last: list[dict[str, Any] | None] = [None]

    def probe() -> dict[str, Any] | None:
        last[0] = link = _link(stack)
        return link if link is not None and check(link) else None

    link: dict[str, Any] = wait_for(probe, timeout,
                                    lambda: f"{what}; agv1's link at the hub: {last[0]}")
    return link


def test_link_health_flows_from_the_agv_through_edge_and_hub_to_the_page(
        stack: Stack, agv: AgvRunner) -> None:
    """The hub serves agv1 ONLINE with its version; the order for a workflow's step ends
    acknowledged; a state failing the schema makes schema_errors 1 within seconds; the
    Agents page shows agv1's row with those figures."""
    online = _link_where(stack, lambda x: x["connection"] == "ONLINE"
                         and x["state_age_s"] is not None, "agv1 ONLINE at the hub")
    assert online["version"] == VERSION and online["manufacturer"] == "acme"
    assert online["schema_errors"] == 0 and online["rejections"] == 0 and not online["lost"]

    with stack.client("planner") as c:
        wid = create(c, "fa", template="vda_haul")
        wait_for(lambda: any(e["kind"] == "step_assigned" and e["data"].get("agent") == "agv1"
                             for e in c.get(f"/api/v1/workflows/{wid}/events").json()["items"]),
                 30, "the haul assigned to agv1")
    acked = _link_where(stack, lambda x: str(x["order_id"] or "").startswith(f"{wid}.haul.")
                        and x["order_unacked_s"] is None, "the haul's order acknowledged")
    assert acked["rejections"] == 0 and acked["schema_errors"] == 0
    with agv.lock:
        assert agv.model.order_id == acked["order_id"], "the AGV runs the order the hub shows"

    sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="not-an-agv")
    sender.connect("127.0.0.1", stack.mqtt_port)
    sender.loop_start()
    try:  # on agv1's own state topic, as a faulty AGV would send it
        sender.publish("uagv/v2/acme/agv1/state", json.dumps({"headerId": "nope"}),
                       qos=1).wait_for_publish(5)
    finally:
        sender.loop_stop()
        sender.disconnect()
    refused = _link_where(stack, lambda x: x["schema_errors"] >= 1,
                          "schema_errors counted at the hub", timeout=10)
    assert refused["schema_errors"] == 1 and refused["connection"] == "ONLINE"

    at = page("agents", "viewer")
    at.selectbox(key="agents_facility").set_value("fa").run()
    assert not at.exception, at.exception
    assert "VDA 5050 links" in shown(at)
    row = table(at, "order ack").set_index("agv").loc["agv1"]
    assert (row["connection"], row["version"], row["schema errors"], row["rejections"]) == (
        "ONLINE", VERSION, 1, 0)
    assert row["order"] == acked["order_id"] and row["order ack"] == "acknowledged"
    assert "1 schema error(s)" in row["attention"]
