"""Reads of the hub's global view from a real edge's events: filtered, paged lists with
counts and opaque cursors, the change feed and its listeners, the cache tiers' figures."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_rig import EdgeProc, hub_config, running_hub, wait_until, write_templates

from cloud_hub import ChangeOut, Hub, HubError, NotFound

F = "hall-a"
IDS = [f"w{i}" for i in range(5)]


@pytest.fixture
def hub(tmp_path: Path, mosquitto_port: int) -> Iterator[Hub]:
    """A hub whose facility has five workflows (no agents: they wait), two cancelled."""
    edge = EdgeProc(F, mosquitto_port, tmp_path, write_templates(tmp_path)).start()
    try:
        with running_hub(hub_config(tmp_path, mosquitto_port, edge.templates)) as h:
            wait_until(lambda: any(f.online for f in h.facilities()), 60)
            for wid in IDS:
                h.command(F, "create_workflow", {"template": "hub_pick", "workflow_id": wid},
                          timeout_s=30)
                time.sleep(0.01)  # distinct creation times
            for wid in IDS[:2]:
                h.command(F, "cancel_workflow", {"workflow_id": wid}, timeout_s=30)
            yield h
    finally:
        edge.close()


def test_filters_and_counts(hub: Hub) -> None:
    """Lists filter by facility, state and template, and count every match."""
    assert [w.id for w in hub.workflows(facility=F).items] == IDS
    cancelled = hub.workflows(state="cancelled")
    assert [w.id for w in cancelled.items] == IDS[:2] and cancelled.count == 2
    active = hub.workflows(facility=F, state="active")
    assert [w.id for w in active.items] == IDS[2:] and active.count == 3
    assert hub.workflows(template="hub_pick", state="active").count == 3
    assert hub.workflows(facility=F, template="hub_pick").count == 5
    assert hub.workflows(facility=F, template="other").items == []
    assert hub.workflows(facility=F, state="active", template="other").count == 0
    assert hub.workflows(facility="elsewhere").count == 0


def test_cursor_pages_through_everything_once(hub: Hub) -> None:
    """Pages of two follow their cursors to the end: each workflow once, in order."""
    seen, cursor = [], None
    while True:
        page = hub.workflows(facility=F, limit=2, cursor=cursor)
        assert page.count == 5
        seen += [w.id for w in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == IDS


def test_time_range(hub: Hub) -> None:
    """since/until select by creation time."""
    created = [hub.workflow(w).created_at for w in IDS]
    assert all(c is not None for c in created)
    page = hub.workflows(since=created[1], until=created[3])
    assert [w.id for w in page.items] == IDS[1:4] and page.count == 3


def test_bad_reads_are_clear_errors(hub: Hub) -> None:
    """Bad cursor, limit, range or token: a HubError naming it; unknown ids: NotFound."""
    with pytest.raises(HubError, match="cursor"):
        hub.workflows(cursor="%%%")
    other = hub.workflows(state="active", limit=1).next_cursor
    with pytest.raises(HubError, match="another list"):
        hub.workflows(facility=F, cursor=other)
    with pytest.raises(HubError, match="limit"):
        hub.workflows(limit=0)
    with pytest.raises(HubError, match="until"):
        hub.workflows(since=10.0, until=5.0)
    with pytest.raises(HubError, match="token"):
        hub.changes("not-hex")
    with pytest.raises(NotFound):
        hub.workflow("nope")
    with pytest.raises(NotFound):
        hub.workflow_events("nope")


def test_change_feed_resumes_from_token(hub: Hub) -> None:
    """Changes after a token are exactly the rest of the feed; listeners get new ones."""
    feed = hub.changes(limit=10_000)
    assert [c.event.seq for c in feed] == list(range(1, len(feed) + 1))
    assert hub.changes(feed[2].token, limit=10_000) == feed[3:]
    only = hub.changes(workflow_id="w3", limit=10_000)
    assert only and all(c.event.workflow_id == "w3" for c in only)
    got: queue.SimpleQueue[ChangeOut] = queue.SimpleQueue()
    unsubscribe = hub.subscribe(got.put)
    hub.command(F, "create_workflow", {"template": "hub_pick", "workflow_id": "w-new"},
                timeout_s=30)
    first = got.get(timeout=10)
    assert int(first.token, 16) == int(feed[-1].token, 16) + 1
    unsubscribe()


def test_cache_tiers_measured(hub: Hub) -> None:
    """A second read of a workflow hits the memory tier; list reads count as storage."""
    hub.workflow("w2")
    hub.workflow("w2")
    hub.workflows(facility=F)
    tiers = hub.cache_stats()["tiers"]
    assert tiers["memory"]["hits"] >= 1 and tiers["warm"]["hits"] >= 1
    assert tiers["storage"]["hits"] >= 1
    assert tiers["memory"]["target_ms"] == 1.0 and tiers["memory"]["p99_ms"] is not None


def test_system_stats(hub: Hub) -> None:
    """System stats report the facility's lag, the queues and the store's size."""
    stats = hub.system_stats()
    assert stats["facilities"][F]["lag"] == 0 and stats["events_applied"] > 0
    assert stats["store_bytes"] > 0 and stats["queues"]["outbox"] == 0
    assert [t["name"] for t in hub.templates()] == ["hub_pick"]
