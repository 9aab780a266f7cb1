"""A hub restart resumes from its snapshots plus its stored tail, then asks the edges for
what it missed while down: nothing missing, nothing doubled; its outbox survives too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_rig import (
    EdgeProc,
    facility_seqs,
    fleet,
    hub_config,
    running_hub,
    same_view,
    wait_until,
    write_templates,
)

from cloud_hub import Hub, NotFound

F = "hall-a"


@pytest.fixture
def edge(tmp_path: Path, mosquitto_port: int) -> Iterator[EdgeProc]:
    e = EdgeProc(F, mosquitto_port, tmp_path, write_templates(tmp_path)).start()
    yield e
    e.close()


def _online(hub: Hub) -> bool:
    return any(f.id == F and f.online and not f.stale for f in hub.facilities())


def _completed(hub: Hub, wid: str) -> bool:
    try:
        return hub.workflow(wid).state == "completed"
    except NotFound:
        return False


def _create(hub: Hub, wid: str) -> None:
    fate = hub.command(F, "create_workflow", {"template": "hub_pick", "workflow_id": wid},
                       timeout_s=30)
    assert fate.state == "applied"


def test_restart_resumes_from_snapshot_and_tail(tmp_path: Path, mosquitto_port: int,
                                                edge: EdgeProc) -> None:
    """Restarted, the hub restores its snapshot, replays its tail, fills what it missed
    from the edge, and every seq is in its feed once, with tokens continuing."""
    config = hub_config(tmp_path, mosquitto_port, edge.templates, snapshot_every=7)
    with fleet(F, mosquitto_port):
        with running_hub(config) as hub:
            wait_until(lambda: _online(hub), 60)
            _create(hub, "w1")
            wait_until(lambda: _completed(hub, "w1"), 90)
            before = hub.changes(limit=10_000)
        # Down: another hub makes the edge run a workflow this one does not hear of.
        with running_hub(hub_config(tmp_path / "other", mosquitto_port, edge.templates)) as o:
            wait_until(lambda: _online(o), 60)
            _create(o, "w2")
            wait_until(lambda: _completed(o, "w2"), 90)
        with running_hub(config) as hub:
            restored = hub.system_stats()["restored"][F]
            assert restored["snapshot_seq"] > 0
            assert restored["snapshot_seq"] + restored["tail_events"] == before[-1].event.seq
            wait_until(lambda: _completed(hub, "w2"), 60)
            edge.stop()
            last_seq, views = edge.projection()
            wait_until(lambda: facility_seqs(hub, F)[-1:] == [last_seq], 30)
            assert facility_seqs(hub, F) == list(range(1, last_seq + 1))
            tokens = [int(c.token, 16) for c in hub.changes(limit=10_000)]
            assert tokens == list(range(1, len(tokens) + 1))
            assert hub.changes(limit=10_000)[:len(before)] == before
            for wid, view in views.items():
                assert same_view(hub.workflow(wid), view), wid


def test_pending_command_survives_restart(tmp_path: Path, mosquitto_port: int,
                                          edge: EdgeProc) -> None:
    """An eventual command still pending when the hub stops is resent by the restarted
    hub and applies once the edge is back."""
    config = hub_config(tmp_path, mosquitto_port, edge.templates)
    with running_hub(config) as hub:
        wait_until(lambda: _online(hub), 60)
        edge.stop()
        wait_until(lambda: not _online(hub), 30)
        fate = hub.command(F, "create_workflow", {"template": "hub_pick", "workflow_id": "w1"},
                           consistency="eventual")
        assert fate.state == "pending"
    edge.start()
    with running_hub(config) as hub:
        wait_until(lambda: hub.command_fate(fate.command_id).state == "applied", 60)
        assert hub.workflow("w1").facility == F
        assert hub.system_stats()["queues"]["outbox"] == 0
