"""Archiving: completed and cancelled workflows leave the core's memory once nothing pending
needs them; their final records are read back through the workflow cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from edge_runtime.core import (
    Append,
    Archive,
    Core,
    CoreConfig,
    CoreError,
    Effect,
    IllegalTransition,
    StaleInput,
    WorkflowView,
    decode_workflow_record,
)
from edge_runtime.store import EventStore, WorkflowCache, recover
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet
from topics import StepDone

ONE = load_template({"name": "one", "steps": [{"id": "s", "kind": "robot", "outputs": ["n"]}]})
TWO = load_template({"name": "two", "steps": [
    {"id": "a", "kind": "robot"}, {"id": "b", "kind": "robot", "after": ["a"]}]})
PLAIN = load_template({"name": "plain", "steps": [{"id": "s", "kind": "robot"}]})
TEMPLATES = {t.name: t for t in (ONE, TWO, PLAIN)}


def _fleet(robots: int = 2, **config: Any) -> ScriptedFleet:
    fl = ScriptedFleet(Core("f1", TEMPLATES, config=CoreConfig(**config)))
    for i in range(robots):
        fl.agent(f"r{i}", "robot", [])
    return fl


def _archived_kinds(fx: list[Effect]) -> list[str]:
    return [e.event.workflow_id or "" for e in fx
            if isinstance(e, Append) and e.event.kind == "workflow_archived"]


def _commit(store: EventStore, fx: list[Effect]) -> None:
    """What the shell does with one input's effects: events and records in one batch."""
    store.append([e.event for e in fx if isinstance(e, Append)],
                 {e.workflow_id: e.record for e in fx if isinstance(e, Archive)})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    with EventStore(tmp_path / "store", "f1") as s:
        yield s


def test_completed_workflow_leaves_memory_and_reads_back_from_the_store(
        store: EventStore) -> None:
    """A completed workflow is archived: gone from the core, its record served by the cache."""
    fl = _fleet()
    _commit(store, fl.effects)
    fl.effects.clear()
    fl.create("one", "w1", data={"k": 1})
    fl.accept("w1", "s")
    fl.start_step("w1", "s")
    fx = fl.feed(StepDone(outputs={"n": 7}, **fl._common("w1", "s")))
    _commit(store, fl.effects)
    assert _archived_kinds(fx) == ["w1"]
    assert fl.core.workflow("w1") is None and fl.core.archived("w1") == "completed"
    assert fl.core.state.workflows == {}
    cache: WorkflowCache[WorkflowView] = WorkflowCache(
        store, decode_workflow_record, live=fl.core.workflow)
    view = cache.get("w1")
    assert view is not None and view.state == "completed" and view.data == {"k": 1}
    assert view.steps["s"].state == "done" and view.steps["s"].outputs == {"n": 7}
    assert view.created_at is not None and view.ended_at is not None
    assert 1000 < view.created_at <= view.ended_at < 1001


def test_cache_counts_live_archived_and_unknown_reads_per_tier(store: EventStore) -> None:
    """Live reads and cached records hit memory; a first archived read hits the store."""
    fl = _fleet()
    fl.create("one", "done")
    fl.finish("done", "s", n=1)
    fl.create("two", "running")
    _commit(store, fl.effects)
    cache: WorkflowCache[WorkflowView] = WorkflowCache(
        store, decode_workflow_record, live=fl.core.workflow)
    running = cache.get("running")
    assert running is not None and running.state.startswith("active")
    assert cache.get("done") is not None and cache.get("done") is not None
    assert cache.get("nope") is None
    assert cache.stats() == {
        "memory": {"hits": 2, "misses": 2, "size": 1, "capacity": 10_000},
        "store": {"hits": 1, "misses": 1},
    }
    assert "running" not in cache  # live workflows change: never kept in the LRU


def test_dependency_stays_until_its_pending_dependent_starts() -> None:
    """A completed workflow a pending one waits for stays in memory; it goes once that starts."""
    fl = _fleet()
    fl.create("one", "w0")
    fl.create("one", "w1")
    fl.create("one", "w2", depends_on=["w0", "w1"])
    fl.finish("w1", "s", n=1)
    assert fl.core.workflow("w1") is not None and fl.core.archived("w1") is None
    fx = fl.finish("w0", "s", n=1)
    assert fl.workflow("w2").state.startswith("active")  # type: ignore[union-attr]
    assert sorted(_archived_kinds(fx)) == ["w0", "w1"]


def test_dependent_created_after_its_dependency_was_archived_starts() -> None:
    """Depending on an archived completed workflow works as on a live one: it starts."""
    fl = _fleet()
    fl.create("one", "w1")
    fl.finish("w1", "s", n=1)
    assert fl.core.archived("w1") == "completed"
    fl.create("one", "w2", depends_on=["w1"])
    w2 = fl.core.workflow("w2")
    assert w2 is not None and w2.state.startswith("active") and w2.depends_on == ("w1",)


def test_added_dependency_on_an_archived_workflow_counts_as_completed() -> None:
    """add_dependency on an archived completed workflow is accepted and waits for the rest."""
    fl = _fleet(robots=1)
    fl.create("one", "w1")
    fl.finish("w1", "s", n=1)
    fl.create("one", "busy")
    fl.create("one", "w2", depends_on=["busy"])
    fl.command("add_dependency", workflow_id="w2", depends_on="w1")
    assert fl.core.workflow("w2").state == "pending"  # type: ignore[union-attr]
    fl.finish("busy", "s", n=1)
    assert fl.core.workflow("w2").state.startswith("active")  # type: ignore[union-attr]


def test_depending_on_an_archived_cancelled_workflow_is_refused() -> None:
    """A workflow cannot depend on a cancelled one, archived or not."""
    fl = _fleet()
    fl.create("one", "w1")
    fl.command("cancel_workflow", workflow_id="w1")
    fx = fl.confirm("w1", "s")  # cancelled once its robot confirmed it stopped
    assert _archived_kinds(fx) == ["w1"] and fl.core.archived("w1") == "cancelled"
    before = fl.core.snapshot()
    with pytest.raises(CoreError, match="cannot depend on cancelled w1"):
        fl.create("one", "w2", depends_on=["w1"])
    assert fl.core.snapshot() == before


def test_duplicate_create_of_an_archived_id_is_refused() -> None:
    """Creating a workflow with an archived workflow's id is refused and changes nothing."""
    fl = _fleet()
    fl.create("one", "w1")
    fl.finish("w1", "s", n=1)
    before = fl.core.snapshot()
    with pytest.raises(CoreError, match="'w1' already exists"):
        fl.command("create_workflow", template="one", workflow_id="w1")
    assert fl.core.snapshot() == before


def test_commands_and_step_events_for_archived_workflows_are_refused() -> None:
    """Commands name the final state; late step events are stale."""
    fl = _fleet()
    fl.create("one", "w1")
    common = fl._common("w1", "s")
    fl.finish("w1", "s", n=1)
    with pytest.raises(IllegalTransition, match="w1 is in completed; it accepts: nothing"):
        fl.command("cancel_workflow", workflow_id="w1")
    with pytest.raises(StaleInput, match="w1 is completed"):
        fl.feed(StepDone(outputs={"n": 1}, **{**common, "event_id": "late"}))


def test_cancelled_workflow_is_archived_with_its_reason() -> None:
    """A cancelled workflow is archived; its record keeps the reason and the state."""
    fl = _fleet()
    fl.create("two", "w1")
    fl.command("cancel_workflow", workflow_id="w1", reason="not needed")
    fl.confirm("w1", "a")
    assert fl.core.workflow("w1") is None
    view = fl.workflow("w1")
    assert view is not None and view.state == "cancelled" and view.reason == "not needed"


def test_failed_workflow_stays_live_and_is_archived_once_recovered_and_done() -> None:
    """A failed workflow stays in memory (an operator may recover it); done later, it goes."""
    fl = _fleet(manual_intervention=False)
    fl.create("one", "w1")
    fl.fail("w1", "s", retryable=False)
    assert fl.core.workflow("w1").state == "failed"  # type: ignore[union-attr]
    assert fl.core.archived("w1") is None
    fl.command("operator_action", workflow_id="w1", action="retry", step_id="s")
    fx = fl.finish("w1", "s", n=1)
    assert _archived_kinds(fx) == ["w1"]


def test_archiving_can_be_turned_off() -> None:
    """With archive_terminal=False finished workflows stay queryable on the core."""
    fl = _fleet(archive_terminal=False)
    fl.create("one", "w1")
    fl.finish("w1", "s", n=1)
    assert fl.core.workflow("w1").state == "completed"  # type: ignore[union-attr]
    assert not fl.records


def _replayed(fl: ScriptedFleet) -> Core:
    core = Core("f1", TEMPLATES)
    for e in fl.effects:
        if isinstance(e, Append):
            core.apply(e.event)
    return core


def test_replay_and_restore_of_a_log_with_archives_equal_the_live_projection() -> None:
    """Replaying the events, or restoring the snapshot, gives the live snapshot bytes."""
    fl = _fleet()
    for i in range(5):
        fl.create("plain", f"w{i}", depends_on=[f"w{i - 1}"] if i else [])
    fl.command("cancel_workflow", workflow_id="w4")
    fl.run()
    live = fl.core.snapshot()
    assert set(fl.core.archived_workflows()) == {"w0", "w1", "w2", "w3", "w4"}
    assert _replayed(fl).snapshot() == live
    restored = Core.restore(live, "f1", TEMPLATES)
    assert restored.snapshot() == live and restored.archived("w4") == "cancelled"


def test_restart_from_snapshot_and_tail_keeps_archived_workflows_out_of_memory(
        store: EventStore) -> None:
    """recover() (newest snapshot + tail) gives a core without the archived workflows, and
    the cache still serves their records."""
    fl = _fleet()
    committed = 0

    def flush() -> None:
        nonlocal committed
        _commit(store, fl.effects[committed:])
        committed = len(fl.effects)

    for i in range(6):
        fl.create("one", f"w{i}")
        fl.finish(f"w{i}", "s", n=i)
        flush()
        if i == 3:
            store.save_snapshot(store.last_seq, fl.core.snapshot())
    fl.create("one", "live")
    flush()
    assert store.last_seq == fl.core.last_seq and store.latest_snapshot() is not None
    core = recover(store, lambda raw: Core.restore(raw, "f1", TEMPLATES),
                   lambda: Core("f1", TEMPLATES))
    assert core.snapshot() == fl.core.snapshot()
    assert set(core.workflows()) == {"live"} and len(core.archived_workflows()) == 6
    cache: WorkflowCache[WorkflowView] = WorkflowCache(
        store, decode_workflow_record, live=core.workflow)
    view = cache.get("w5")
    assert view is not None and view.steps["s"].outputs == {"n": 5}


def test_archived_map_stays_small_in_snapshots() -> None:
    """A thousand archived workflows leave no workflow rows, only ids and a byte each."""
    fl = _fleet(robots=10)
    for i in range(1000):
        fl.create("plain", f"w{i:04d}")
    fl.run()
    assert len(fl.core.archived_workflows()) == 1000 and not fl.core.workflows()
    fields = msgpack.unpackb(fl.core.snapshot())
    assert fields[5] == [] and len(fields[8]) == 1000
    assert len(msgpack.packb(fields[8])) <= 1000 * (1 + 5 + 1) + 5


def _check_archiving(fl: ScriptedFleet) -> None:
    """Archived ones are finished and gone from memory; a finished one in memory has a
    pending dependent."""
    core = fl.core
    for wid, state in core.archived_workflows().items():
        assert state in ("completed", "cancelled") and core.workflow(wid) is None
        assert decode_workflow_record(fl.records[wid]).state == state
    for wf in core.workflows().values():
        if wf.state in ("completed", "cancelled"):
            assert any(core.state.workflows[d].state == "pending"
                       for d in core.state.workflows[wf.id].dependents if d in core.state.workflows)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["create", "finish", "cancel"]),
                          st.integers(0, 7), st.integers(0, 255)), max_size=40))
@example([("create", 0, 0), ("create", 1, 0), ("create", 2, 0b11), ("finish", 0, 0),
          ("finish", 0, 0)])  # w0 is kept while w2 waits for w1, then both are archived
def test_only_finished_workflows_nothing_pending_needs_are_archived(
        ops: list[tuple[str, int, int]]) -> None:
    """Whatever the order, after every input: archived ones are finished and gone from memory,
    every finished one in memory has a pending dependent; and replay agrees byte for byte."""
    fl = _fleet(robots=3)
    finished = 0
    for op, a, b in ops:
        wid = f"w{a}"
        if op == "finish":  # the a-th of the workflows whose step has a robot now, if any
            assigned = sorted(w.id for w in fl.core.workflows().values()
                              if w.steps["s"].state == "assigned")
            if not assigned:
                continue
            wid = assigned[a % len(assigned)]
            fl.finish(wid, "s", n=a)
            view = fl.workflow(wid)
            assert view is not None and view.state == "completed"
            finished += 1
        else:
            try:
                if op == "create":  # depending on the others that bit i of b picks, if usable
                    fl.create("one", wid, depends_on=[
                        f"w{i}" for i in range(8) if b >> i & 1 and i != a
                        and (dep := fl.workflow(f"w{i}")) and dep.state != "cancelled"])
                else:
                    fl.command("cancel_workflow", workflow_id=wid)
            except CoreError:
                continue  # refused (exists already, unknown, over): nothing changed
        _check_archiving(fl)
    assume(finished > 0)  # a run in which nothing completed shows nothing about archiving
    assert _replayed(fl).snapshot() == fl.core.snapshot()


def test_snapshot_from_before_archiving_still_restores() -> None:
    """A format-1 snapshot (no archived map, no timestamps) loads; the next one is the
    current format (3: with conflicts)."""
    fl = _fleet()
    fl.create("two", "w1")
    fields = msgpack.unpackb(fl.core.snapshot())
    old = msgpack.packb([1, *fields[1:5], [row[:15] for row in fields[5]], *fields[6:8]])
    core = Core.restore(old, "f1", TEMPLATES)
    view = core.workflow("w1")
    assert view is not None and view.state == fl.core.workflow("w1").state  # type: ignore[union-attr]
    assert view.created_at is None and msgpack.unpackb(core.snapshot())[0] == 4
