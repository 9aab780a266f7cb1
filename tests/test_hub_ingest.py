"""The hub's ingest and global view against real ``fleetflow edge`` processes on real
brokers: aggregation, equality with the edges' projections, gap fill, restart, partition."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
from cloud_hub import Hub, NotFound


@pytest.fixture(params=["mosquitto", "amqtt"])
def broker_port(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[int]:
    """A running broker of each kind; yields its port."""
    if request.param == "mosquitto":
        yield request.getfixturevalue("mosquitto_port")
    else:
        port = free_port()
        with BrokerProcess("127.0.0.1", port, tmp_path / "passwd", allow_anonymous_dev=True):
            yield port


@pytest.fixture
def edges(tmp_path: Path) -> Iterator[Callable[[str, int], EdgeProc]]:
    made: list[EdgeProc] = []
    templates = write_templates(tmp_path)

    def make(facility: str, port: int) -> EdgeProc:
        made.append(EdgeProc(facility, port, tmp_path, templates).start())
        return made[-1]

    yield make
    for edge in made:
        edge.close()


def _create(hub: Hub, facility: str, wid: str) -> None:
    fate = hub.command(facility, "create_workflow", {"template": "hub_pick", "workflow_id": wid},
                       consistency="strong", timeout_s=30)
    assert fate.state == "applied", fate


def _done(hub: Hub, wid: str) -> Callable[[], bool]:
    def done() -> bool:
        try:
            return hub.workflow(wid).state == "completed"
        except NotFound:
            return False
    return done


def _online(hub: Hub, *facilities: str) -> Callable[[], bool]:
    def online() -> bool:
        seen = {f.id: f for f in hub.facilities()}
        return all(f in seen and seen[f].online and not seen[f].stale for f in facilities)
    return online


def _caught_up(hub: Hub, edge: EdgeProc, last_seq: int) -> Callable[[], bool]:
    def caught_up() -> bool:
        return any(f.id == edge.facility and f.applied_seq >= last_seq for f in hub.facilities())
    return caught_up


def _assert_equal_to_edge(hub: Hub, edge: EdgeProc) -> None:
    """Stop the edge first: every seq exactly once, every workflow as the edge has it."""
    last_seq, views = edge.projection()
    wait_until(_caught_up(hub, edge, last_seq), 30)
    assert facility_seqs(hub, edge.facility) == list(range(1, last_seq + 1))
    for wid, view in views.items():
        assert same_view(hub.workflow(wid), view), wid
    page = hub.workflows(facility=edge.facility, limit=1000)
    assert {w.id for w in page.items} == set(views) and page.count == len(views)


def test_two_facilities_aggregated(broker_port: int, tmp_path: Path,
                                   edges: Callable[[str, int], EdgeProc]) -> None:
    """Workflows of two facilities' edges show up in one view, listed per facility."""
    templates = tmp_path / "templates"
    a, b = edges("hall-a", broker_port), edges("hall-b", broker_port)
    with running_hub(hub_config(tmp_path, broker_port, templates)) as hub, \
            fleet("hall-a", broker_port), fleet("hall-b", broker_port):
        wait_until(_online(hub, "hall-a", "hall-b"), 60)
        _create(hub, "hall-a", "wa1")
        _create(hub, "hall-b", "wb1")
        wait_until(_done(hub, "wa1"), 90)
        wait_until(_done(hub, "wb1"), 90)
        assert hub.facility_of("wa1") == "hall-a" and hub.facility_of("wb1") == "hall-b"
        assert [w.id for w in hub.workflows(facility="hall-b").items] == ["wb1"]
        assert {w.id for w in hub.workflows(state="completed").items} == {"wa1", "wb1"}
        assert {a.facility for a in hub.agents().items} == {"hall-a", "hall-b"}
        worked = {w.id for a in ("hall-a-r0", "hall-a-r1")
                  for w in hub.agent_workflows(a).items}
        assert worked == {"wa1"}  # finished: its steps no longer name their agents
        a.stop()
        b.stop()
        _assert_equal_to_edge(hub, a)
        _assert_equal_to_edge(hub, b)


def test_view_equals_edge_projection(mosquitto_port: int, tmp_path: Path,
                                     edges: Callable[[str, int], EdgeProc]) -> None:
    """Finished and running workflows at the hub equal the edge's own records and replay."""
    edge = edges("hall-a", mosquitto_port)
    with running_hub(hub_config(tmp_path, mosquitto_port, tmp_path / "templates")) as hub:
        wait_until(_online(hub, "hall-a"), 60)
        with fleet("hall-a", mosquitto_port):
            _create(hub, "hall-a", "w1")
            wait_until(_done(hub, "w1"), 90)
        _create(hub, "hall-a", "w2")  # no agents left: it waits for one
        edge.stop()
        _assert_equal_to_edge(hub, edge)
        assert hub.workflow("w2").state.startswith("active")


def test_missed_events_are_replayed(broker_port: int, tmp_path: Path,
                                    edges: Callable[[str, int], EdgeProc]) -> None:
    """Events the hub missed (its link cut) are asked for with replay and fill the gap."""
    proxy = Proxy(broker_port)
    try:
        edge = edges("hall-a", broker_port)
        config = hub_config(tmp_path, proxy.port, tmp_path / "templates")
        with running_hub(config) as hub, fleet("hall-a", broker_port):
            wait_until(_online(hub, "hall-a"), 60)
            _create(hub, "hall-a", "w1")
            wait_until(_done(hub, "w1"), 90)
            proxy.cut()
            wait_until(lambda: not hub.connected, 30)
            # The edge goes on while the hub is away: another hub (on the broker directly)
            # creates a workflow this one never hears of.
            with Hub(hub_config(tmp_path / "other", broker_port,
                                tmp_path / "templates")) as other:
                wait_until(_online(other, "hall-a"), 60)
                _create(other, "hall-a", "w2")
                wait_until(_done(other, "w2"), 90)
            asked = hub.system_stats()["replays_asked"]
            proxy.heal()
            wait_until(_done(hub, "w2"), 60)
            assert hub.system_stats()["replays_asked"] > asked
            edge.stop()
            _assert_equal_to_edge(hub, edge)
    finally:
        proxy.close()
