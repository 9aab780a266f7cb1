"""Hub → edge commands with consistency levels, against real ``fleetflow edge`` processes
on real brokers: strong waits for the reply event, eventual returns pending, a down edge
makes a strong write ``Unavailable`` and the command applies when it returns."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_rig import EdgeProc, hub_config, running_hub, wait_until, write_templates

from cloud_hub import Hub, HubError, NotFound, Stale, Unavailable

F = "hall-a"


@pytest.fixture
def edge(tmp_path: Path, mosquitto_port: int) -> Iterator[EdgeProc]:
    e = EdgeProc(F, mosquitto_port, tmp_path, write_templates(tmp_path)).start()
    yield e
    e.close()


@pytest.fixture
def hub(tmp_path: Path, mosquitto_port: int, edge: EdgeProc) -> Iterator[Hub]:
    with running_hub(hub_config(tmp_path, mosquitto_port, edge.templates)) as h:
        wait_until(lambda: _online(h), 60)
        yield h


def _online(hub: Hub) -> bool:
    return any(f.id == F and f.online and not f.stale for f in hub.facilities())


def _create_args(wid: str) -> dict[str, str]:
    return {"template": "hub_pick", "workflow_id": wid}


def test_strong_write_answered_by_reply(hub: Hub) -> None:
    """A strong create returns the edge's reply, and the hub already shows its effect."""
    fate = hub.command(F, "create_workflow", _create_args("w1"), consistency="strong",
                       who="alice", reason="shift start", timeout_s=30)
    assert fate.state == "applied" and fate.result and "state" in fate.result
    assert hub.workflow("w1").facility == F  # read-your-writes: applied before the reply
    assert hub.command_fate(fate.command_id) == fate


def test_who_and_reason_in_audit_trail(hub: Hub) -> None:
    """The command's who and reason appear on its reply event in the workflow's events."""
    fate = hub.command(F, "create_workflow", _create_args("w1"), who="alice",
                       reason="rush order", timeout_s=30)
    events = hub.workflow_events("w1").items
    replies = [e for e in events if e.kind == "command_reply"]
    assert replies and replies[0].data["cmd"] == fate.command_id
    assert replies[0].data["hub_command"]["who"] == "alice"
    assert replies[0].data["hub_command"]["reason"] == "rush order"
    assert [e.seq for e in events] == sorted(e.seq for e in events)


def test_refused_command_settles_refused(hub: Hub) -> None:
    """A command the edge refuses (unknown template) ends refused, with the edge's reason."""
    fate = hub.command(F, "create_workflow", {"template": "nope", "workflow_id": "w9"},
                       timeout_s=30)
    assert fate.state == "refused" and fate.error
    with pytest.raises(NotFound):
        hub.workflow("w9")


def test_bad_commands_change_nothing(hub: Hub) -> None:
    """Unknown facility, bad action or arguments: a clear error, nothing stored or sent."""
    sent = hub.system_stats()["commands"]["sent"]
    with pytest.raises(NotFound, match="nowhere"):
        hub.command("nowhere", "create_workflow", _create_args("w1"))
    with pytest.raises(HubError, match="action"):
        hub.command(F, "launch_rockets", {}, command_id="c-bad")
    with pytest.raises(HubError, match="replay"):
        hub.command(F, "replay", {"from_seq": 1})
    with pytest.raises(HubError, match="timeout_s"):
        hub.command(F, "create_workflow", _create_args("w1"), timeout_s=0)
    with pytest.raises(NotFound):
        hub.command_fate("c-bad")
    assert hub.system_stats()["commands"]["sent"] == sent


def test_strong_write_with_edge_down_unavailable_then_applied(hub: Hub, edge: EdgeProc
                                                               ) -> None:
    """Edge down: a strong write raises Unavailable after its timeout, stays queued, and
    applies when the edge is back."""
    edge.stop()
    wait_until(lambda: not _online(hub), 30)
    t0 = time.monotonic()
    with pytest.raises(Unavailable, match="offline") as err:
        hub.command(F, "create_workflow", _create_args("w1"), command_id="c-down",
                    timeout_s=1.5)
    assert 1.4 <= time.monotonic() - t0 < 10
    assert "c-down" in str(err.value)
    assert hub.command_fate("c-down").state == "pending"
    edge.start()
    wait_until(lambda: hub.command_fate("c-down").state == "applied", 60)
    assert hub.workflow("w1").facility == F


def test_eventual_write_pending_then_applied(hub: Hub, edge: EdgeProc) -> None:
    """An eventual write returns pending at once and is applied once the edge takes it."""
    edge.stop()
    wait_until(lambda: not _online(hub), 30)
    t0 = time.monotonic()
    fate = hub.command(F, "create_workflow", _create_args("w1"), consistency="eventual")
    assert fate.state == "pending" and time.monotonic() - t0 < 1.0
    edge.start()
    wait_until(lambda: hub.command_fate(fate.command_id).state == "applied", 60)
    assert hub.workflow("w1").state.startswith("active")


def test_same_command_id_is_sent_once(hub: Hub) -> None:
    """Repeating a command id returns the first command's fate; nothing new is sent."""
    first = hub.command(F, "create_workflow", _create_args("w1"), command_id="c-1",
                        timeout_s=30)
    sent = hub.system_stats()["commands"]["sent"]
    again = hub.command(F, "create_workflow", _create_args("w1"), command_id="c-1",
                        timeout_s=30)
    assert again == first and hub.system_stats()["commands"]["sent"] == sent


def test_bounded_staleness_reads(hub: Hub, edge: EdgeProc) -> None:
    """A bounded read is served while the view is current and refused (Stale) once the
    edge has been offline longer than the bound."""
    hub.command(F, "create_workflow", _create_args("w1"), timeout_s=30)
    assert hub.workflow("w1", max_staleness_s=0.5).id == "w1"
    assert hub.workflows(facility=F, max_staleness_s=0.5).count == 1
    edge.stop()
    wait_until(lambda: not _online(hub), 30)
    time.sleep(0.6)
    with pytest.raises(Stale, match="offline"):
        hub.workflow("w1", max_staleness_s=0.5)
    with pytest.raises(Stale):
        hub.workflows(facility=F, max_staleness_s=0.5)
    assert hub.workflow("w1").id == "w1"  # unbounded reads still served
