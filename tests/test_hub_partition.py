"""The issue's partition test: the hub's broker link is cut (a real TCP cut) while the edge
keeps completing workflows; strong writes during the cut get ``Unavailable``, eventual ones
are applied after; once reconnected the hub's view equals the edge's projection, no event
missing or doubled."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_rig import (
    EdgeProc,
    Proxy,
    facility_seqs,
    fleet,
    hub_config,
    running_hub,
    same_view,
    wait_until,
    write_templates,
)

from broker import BrokerProcess, free_port
from cloud_hub import Hub, NotFound, Unavailable

F = "hall-a"


@pytest.fixture(params=["mosquitto", "amqtt"])
def broker_port(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[int]:
    """A running broker of each kind; yields its port."""
    if request.param == "mosquitto":
        yield request.getfixturevalue("mosquitto_port")
    else:
        port = free_port()
        with BrokerProcess("127.0.0.1", port, tmp_path / "passwd", allow_anonymous_dev=True):
            yield port


def _online(hub: Hub) -> bool:
    return any(f.id == F and f.online and not f.stale for f in hub.facilities())


def _completed(hub: Hub, wid: str) -> bool:
    try:
        return hub.workflow(wid).state == "completed"
    except NotFound:
        return False


def test_partition_then_view_equals_edge(broker_port: int, tmp_path: Path) -> None:
    """Cut, the edge completes workflows; strong → Unavailable, eventual → applied after;
    healed, the hub's view equals the edge's and every seq is there once."""
    templates = write_templates(tmp_path)
    edge = EdgeProc(F, broker_port, tmp_path, templates).start()
    proxy = Proxy(broker_port)
    try:
        with running_hub(hub_config(tmp_path, proxy.port, templates)) as hub, \
                fleet(F, broker_port):
            wait_until(lambda: _online(hub), 60)
            hub.command(F, "create_workflow", {"template": "hub_pick", "workflow_id": "w0"},
                        timeout_s=30)
            wait_until(lambda: _completed(hub, "w0"), 90)
            proxy.cut()
            wait_until(lambda: not hub.connected, 30)
            with pytest.raises(Unavailable, match="link is down"):
                hub.command(F, "create_workflow",
                            {"template": "hub_pick", "workflow_id": "w-strong"},
                            command_id="c-strong", timeout_s=1.0)
            eventual = hub.command(F, "create_workflow",
                                   {"template": "hub_pick", "workflow_id": "w-eventual"},
                                   consistency="eventual")
            assert eventual.state == "pending"
            with running_hub(hub_config(tmp_path / "other", broker_port, templates)) as other:
                wait_until(lambda: _online(other), 60)
                for wid in ("w1", "w2"):
                    other.command(F, "create_workflow",
                                  {"template": "hub_pick", "workflow_id": wid}, timeout_s=30)
                for wid in ("w1", "w2"):
                    wait_until(functools.partial(_completed, other, wid), 90)
            assert hub.workflows(facility=F).count == 1  # still cut: only w0
            proxy.heal()
            wait_until(lambda: hub.command_fate(eventual.command_id).state == "applied", 60)
            wait_until(lambda: hub.command_fate("c-strong").state == "applied", 60)
            for wid in ("w1", "w2", "w-strong", "w-eventual"):
                wait_until(functools.partial(_completed, hub, wid), 90)
            edge.stop()
            last_seq, views = edge.projection()
            wait_until(lambda: facility_seqs(hub, F)[-1:] == [last_seq], 30)
            assert facility_seqs(hub, F) == list(range(1, last_seq + 1))
            assert set(views) == {"w0", "w1", "w2", "w-strong", "w-eventual"}
            for wid, view in views.items():
                assert same_view(hub.workflow(wid), view), wid
    finally:
        proxy.close()
        edge.close()
