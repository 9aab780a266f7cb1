"""The Agents page's "VDA 5050 links" section: its plain functions (what needs attention,
the rows, the caption), then the page under AppTest against a real stack (``dash_rig``)
whose hub received a ``VdaLinks`` on ``fa``'s ``edge/vda`` — put on the wire by a test
client as the edge does — showing the figures and flagging the links that need attention."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from dash_rig import Stack, errors, page, serve, shown, table
from hub_stack import wait_for
from paho.mqtt.enums import CallbackAPIVersion

from dashboard._agents import (
    link_trouble,
    vda_attention,
    vda_link_rows,
    vda_report_caption,
)
from topics import VdaAgvError, VdaLink, VdaLinks, edge_topic, encode

HEALTHY: dict[str, Any] = {
    "agent_id": "acme-agv1", "manufacturer": "acme", "serial_number": "agv1",
    "version": "2.0.0", "connection": "ONLINE", "lost": False, "state_age_s": 0.4,
    "operating_mode": "AUTOMATIC", "order_id": "o-1", "order_unacked_s": None,
    "instants_unacked": 1, "oldest_instant_s": 0.8, "rejections": 0, "schema_errors": 0,
    "errors": [{"error_type": "lowBattery", "level": "WARNING", "description": ""}]}


def _link(**change: Any) -> dict[str, Any]:
    return {**HEALTHY, **change}


# --- the plain functions ------------------------------------------------------------------

def test_a_healthy_link_needs_no_attention() -> None:
    """Online, acknowledged, a young instant action, a WARNING: nothing to flag."""
    assert link_trouble(HEALTHY) == []
    row = vda_link_rows({"links": [HEALTHY]})[0]
    assert row["attention"] == "ok" and row["order ack"] == "acknowledged"
    assert row["instant actions"] == "1 awaiting (oldest 0.8 s)"
    assert row["errors"] == "WARNING lowBattery" and row["state age"] == "0.4 s"


@pytest.mark.parametrize(("change", "why"), [
    ({"lost": True}, "lost"),
    ({"connection": "OFFLINE"}, "connection OFFLINE"),
    ({"connection": "CONNECTIONBROKEN"}, "connection CONNECTIONBROKEN"),
    ({"order_unacked_s": 6.5}, "order not acknowledged for 6.5 s"),
    ({"instants_unacked": 3, "oldest_instant_s": 12.2}, "3 instant action(s) waiting up to 12 s"),
    ({"rejections": 2}, "2 rejection(s)"),
    ({"schema_errors": 1}, "1 schema error(s)"),
    ({"errors": [{"error_type": "noRoute", "level": "FATAL"}]}, "FATAL noRoute"),
])
def test_each_kind_of_trouble_is_flagged(change: dict[str, Any], why: str) -> None:
    """Every condition of attention is named, in the row's flag and the attention list."""
    link = _link(**change)
    assert link_trouble(link) == [why]
    assert vda_link_rows({"links": [link]})[0]["attention"] == f"⚠ {why}"
    assert vda_attention({"links": [link, HEALTHY]}) == [f"acme-agv1: {why}"]


def test_waits_up_to_the_threshold_are_not_trouble() -> None:
    """An order or instant action unacknowledged for 5 s or less is normal."""
    link = _link(order_unacked_s=5.0, instants_unacked=2, oldest_instant_s=4.9)
    assert link_trouble(link) == []
    row = vda_link_rows({"links": [link]})[0]
    assert row["order ack"] == "order not acknowledged for 5.0 s"


def test_rows_are_by_agent_and_tolerate_missing_figures() -> None:
    """Rows come sorted by agent id; a link before any message shows dashes."""
    bare = {"agent_id": "acme-agv0", "manufacturer": "acme", "serial_number": "agv0"}
    rows = vda_link_rows({"links": [HEALTHY, bare]})
    assert [r["agv"] for r in rows] == ["acme-agv0", "acme-agv1"]
    assert rows[0]["attention"] == "ok"
    assert (rows[0]["version"], rows[0]["mode"], rows[0]["state age"], rows[0]["order"],
            rows[0]["connection"]) == ("—", "—", "—", "—", "UNKNOWN")


def test_caption_says_how_old_and_what_is_missing() -> None:
    """No links: "No VDA 5050 AGVs"; else the age, an offline edge and AGVs left out."""
    assert vda_report_caption({"links": [], "received_at": None}).startswith(
        "No VDA 5050 AGVs")
    assert vda_report_caption({"links": [], "received_at": 5.0}) == "No VDA 5050 AGVs."
    text = vda_report_caption({"links": [HEALTHY], "age_s": 1.25, "edge_online": False,
                               "left_out": 3})
    assert "1.2 s ago" in text and "edge is offline" in text and "3 more AGV(s)" in text


# --- the page -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[Stack]:
    """Edges ``fa`` and ``fb`` and the hub; ``fa``'s VDA 5050 links published."""
    for s in serve(tmp_path_factory, mosquitto_bin, facilities=("fa", "fb")):
        report = VdaLinks(facility="fa", ts=1000.0, links=[
            VdaLink(**{**HEALTHY, "errors": [VdaAgvError(error_type="lowBattery",
                                                         level="WARNING")]}),
            VdaLink(agent_id="acme-agv2", manufacturer="acme", serial_number="agv2",
                    version="2.1.0", connection="ONLINE", state_age_s=0.9,
                    operating_mode="SEMIAUTOMATIC", order_id="o-2", order_unacked_s=7.5,
                    instants_unacked=2, oldest_instant_s=3.5, rejections=1,
                    schema_errors=4,
                    errors=[VdaAgvError(error_type="noRoute", level="FATAL")])])
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        client.connect("127.0.0.1", s.mqtt_port)
        client.loop_start()
        client.publish(edge_topic("fa", "vda"), encode(report), qos=1,
                       retain=True).wait_for_publish(5)
        client.loop_stop()
        client.disconnect()
        with s.client("viewer") as c:
            wait_for(lambda: c.get("/api/v1/facilities/fa/vda").json()["links"],
                     what="fa's links at the hub")
        yield s


def _on(facility: str, role: str = "supervisor") -> Any:
    at = page("agents", role)
    at.selectbox(key="agents_facility").set_value(facility).run()
    assert not at.exception, at.exception
    return at


@pytest.mark.slow
def test_the_page_shows_the_links_and_flags_the_one_in_trouble(stack: Stack) -> None:
    """fa: both AGVs with their figures; agv2 (order unacknowledged 7.5 s, a rejection,
    schema errors, a FATAL error) flagged in its row and in a warning, agv1 ok."""
    at = _on("fa", "viewer")
    text = shown(at)
    assert "VDA 5050 links" in text
    rows = table(at, "order ack").set_index("agv")
    assert rows.loc["acme-agv1", "attention"] == "ok"
    assert rows.loc["acme-agv2", "attention"].startswith("⚠ order not acknowledged for 7.5 s")
    two = rows.loc["acme-agv2"]
    assert (two["version"], two["mode"], two["order"], two["rejections"],
            two["schema errors"]) == ("2.1.0", "SEMIAUTOMATIC", "o-2", 1, 4)
    assert two["instant actions"] == "2 awaiting (oldest 3.5 s)"
    assert two["errors"] == "FATAL noRoute" and two["state age"] == "0.9 s"
    warned = [e for e in errors(at) if "need attention" in e]
    assert len(warned) == 1 and "acme-agv2" in warned[0] and "acme-agv1" not in warned[0]
    assert "FATAL noRoute" in warned[0] and "4 schema error(s)" in warned[0]
    assert "ago" in text  # the report's age


@pytest.mark.slow
def test_a_facility_without_links_says_so(stack: Stack) -> None:
    """fb's edge masters no AGV: "No VDA 5050 AGVs", no links table, no warning."""
    at = _on("fb")
    assert "No VDA 5050 AGVs" in shown(at)
    assert not any("order ack" in f.value.columns for f in at.dataframe)
    assert not any("need attention" in e for e in errors(at))
