"""The VDA 5050 master's state is durable: sessions (with their running orders, queues and
instant actions), counters and the bridge's own bookkeeping become records, committed with
the batch's events, and a master that loads them takes up the orders its AGVs still run."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rocksdict import Options, Rdict
from test_crash_writer import make_events
from test_vda_master import PICK, T0, M, S, line, messages, online, order_state, outcomes, state
from vda_rig import Rig

from edge_runtime.core import Publish
from edge_runtime.store import EventStore, StoreOrderError
from edge_runtime.vda5050 import (
    AgvSession,
    RecordError,
    VdaAgvLost,
    VdaBridge,
    VdaMaster,
    VdaStepDone,
    VdaStepProgress,
    decode_record,
    encode_record,
)
from topics import Assign, Cancel, Pause, StepFailed, SyncArrival

# --- the codec: any dataclass, by its type hints ------------------------------------------


@dataclass(slots=True, frozen=True)
class Leaf:
    name: str
    weight: float = 1.0


@dataclass(slots=True)
class Sample:
    ints: tuple[int, ...]
    pair: tuple[str, int]
    waiting: deque[Leaf]
    seen: frozenset[tuple[str, str]]
    by_key: dict[tuple[str, int], list[str]]
    by_name: dict[str, Leaf]
    either: int | str | None
    leaf_or_text: Leaf | str
    maybe: Leaf | None
    mode: Literal["A", "B"]
    raw: dict[str, Any]
    tags: set[str] = field(default_factory=set)


_text = st.text(max_size=8)
_json = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | _text
                     | st.floats(allow_nan=False, allow_infinity=False),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(_text, inner, max_size=3), max_leaves=8)
_leaf = st.builds(Leaf, _text, st.floats(allow_nan=False, allow_infinity=False))
_samples = st.builds(
    Sample, st.tuples(st.integers()).map(tuple) | st.lists(st.integers()).map(tuple),
    st.tuples(_text, st.integers()), st.lists(_leaf, max_size=3).map(deque),
    st.frozensets(st.tuples(_text, _text), max_size=3),
    st.dictionaries(st.tuples(_text, st.integers()), st.lists(_text, max_size=2), max_size=3),
    st.dictionaries(_text, _leaf, max_size=3), st.none() | st.integers() | _text,
    _leaf | _text, st.none() | _leaf, st.sampled_from(["A", "B"]),
    st.dictionaries(_text, _json, max_size=3), st.sets(_text, max_size=3))


@settings(max_examples=200)
@given(_samples)
def test_any_dataclass_round_trips_through_its_record(sample: Sample) -> None:
    """Nested dataclasses, unions, tuples, deques, sets, dicts with any keys, raw JSON."""
    again = decode_record(encode_record(sample, Sample), Sample)
    assert again == sample
    assert type(again.waiting) is deque and type(again.seen) is frozenset


def test_a_record_of_an_older_or_newer_build_reads_with_defaults() -> None:
    """A field missing from the record takes its default; a field unknown to the class is
    ignored; a value of the wrong type is a RecordError, not a wrong object."""
    assert decode_record(b'{"name": "x", "colour": "red"}', Leaf) == Leaf("x", 1.0)
    for bad in (b'{"weight": 2.0}', b'{"name": 3}', b"[1, 2]", b"not json"):
        with pytest.raises(RecordError):
            decode_record(bad, Leaf)


def _busy_session() -> tuple[VdaMaster, AgvSession]:
    """A master mid-order: acknowledged update, progress, a queued step, a pending pause,
    a cancel on its way, safety and pause flags, factsheet, header ids."""
    m = VdaMaster(base_length=2)
    online(m, "2.0.0")
    m.handle(f"uagv/v2/{M}/{S}/factsheet",
             {**state("2.0.0"), "typeSpecification": {"seriesName": "x"}}, T0)
    (order,) = messages(m.assign(M, S, workflow_id="wf1", step_id="s1", now=T0,
                                 path=line(5), actions=[PICK]))
    m.assign(M, S, workflow_id="wf1", step_id="s2", attempt=2, now=T0, path=line(2))
    m.handle(f"uagv/v2/{M}/{S}/state", order_state(order.message, "2.0.0", paused=True,
             safetyState={"eStop": "NONE", "fieldViolation": True}), T0 + 1)
    m.pause(M, S, T0 + 2, command_id="p1")
    m.cancel(M, S, workflow_id="wf1", step_id="s1", now=T0 + 3, command_id="c1")
    return m, m.sessions[(M, S)]


def test_a_busy_session_round_trips_whole() -> None:
    """Everything the master knows of an AGV comes back equal from its record."""
    _, s = _busy_session()
    assert s.active is not None and s.queue and s.instants and s.safety and s.paused
    assert decode_record(encode_record(s, AgvSession), AgvSession) == s


_ops = st.lists(st.sampled_from(["assign", "take", "drive", "finish", "pause", "cancel",
                                 "foreign", "tick", "offline", "online"]), max_size=14)


@settings(max_examples=120)
@given(_ops)
def test_every_session_round_trips_whatever_happened(ops: list[str]) -> None:
    """After any sequence of assigns, states, instant actions and losses, each session's
    record gives it back equal."""
    m = VdaMaster(base_length=2)
    online(m)
    now, steps = T0, 0
    for op in ops:
        now += 1.0
        s = m.sessions[(M, S)]
        if op == "assign":
            steps += 1
            m.assign(M, S, workflow_id="w", step_id=f"s{steps}", now=now, path=line(4),
                     actions=[PICK])
        elif op in ("take", "drive", "finish") and s.active is not None:
            o = s.active.message
            fields: dict[str, Any] = {"drive": {"lastNodeId": o["nodes"][1]["nodeId"],
                                                "lastNodeSequenceId": 2},
                                      "finish": {"nodeStates": [], "edgeStates": []}}.get(op, {})
            m.handle(f"uagv/v2/{M}/{S}/state", order_state(o, **fields), now)
        elif op == "pause":
            m.pause(M, S, now, command_id=f"p{now:.0f}")
        elif op == "cancel" and s.active is not None:
            m.cancel(M, S, workflow_id="w", step_id=s.active.job.step_id, now=now)
        elif op == "foreign":
            m.handle(f"uagv/v2/{M}/{S}/state", state(orderId="x", paused=True), now)
        elif op in ("offline", "online"):
            value = "OFFLINE" if op == "offline" else "ONLINE"
            m.handle(f"uagv/v2/{M}/{S}/connection", {**state(), "connectionState": value}, now)
        else:
            m.tick(now + 100)
        for session in m.sessions.values():
            assert decode_record(encode_record(session, AgvSession), AgvSession) == session


# --- which records change, and when they must be committed --------------------------------


def _records(m: VdaMaster) -> list[tuple[bytes, bytes]]:
    """What a store would hold of the master's changed records."""
    return [(k, v) for k, v in m.changed().items() if v is not None]


def test_only_touched_sessions_are_written_and_a_bare_state_is_not_urgent() -> None:
    """A state that changes nothing else is written with the next commit but does not ask
    for one; a message sent or an outcome reported does; an untouched AGV is not written."""
    m = VdaMaster()
    online(m)
    m.handle(f"uagv/v2/{M}/other/connection", {**state(), "serialNumber": "other",
                                                 "connectionState": "ONLINE"}, T0)
    m.changed()
    m.handle(f"uagv/v2/{M}/{S}/state", state(header=5), T0 + 1)
    assert not m.urgent
    assert list(m.changed()) == [f"agv/{M}/{S}".encode()] and m.changed() == {}
    m.pause(M, S, T0 + 2)
    assert m.urgent and set(m.changed()) == {f"agv/{M}/{S}".encode(), b"master"}
    assert not m.urgent


def test_loaded_agvs_are_not_lost_for_the_time_the_edge_was_down() -> None:
    """Liveness counts from the load: an hour of downtime loses no AGV at the next tick."""
    m = VdaMaster(liveness_s=60)
    online(m)
    again = VdaMaster(liveness_s=60)
    assert again.load(_records(m), T0 + 3600) == []
    assert again.tick(T0 + 3601) == []
    assert again.tick(T0 + 3700) == [VdaAgvLost(M, S, "STATE_TIMEOUT")]


def test_a_record_that_does_not_fit_is_skipped_and_said() -> None:
    """A broken record is reported and skipped; the others load."""
    m = VdaMaster()
    online(m)
    problems = VdaMaster().load([(b"agv/acme/agv9", b"{}"), *_records(m)], T0)
    assert len(problems) == 1 and "agv/acme/agv9" in problems[0]


# --- a restarted master takes up the running order -----------------------------------------


def _restarted(rig: Rig, downtime: float) -> Rig:
    """The edge dies (only what was committed survives) and comes back ``downtime`` later,
    while the AGV drove on."""
    rig.commit()
    for _ in range(int(downtime / 0.1)):  # nobody listens to the AGV meanwhile
        rig.now = round(rig.now + 0.1, 6)
        rig.agv.step(rig.now)
    bridge = VdaBridge(rig.bridge.facility, VdaMaster(graph=rig.bridge.master.graph))
    assert bridge.load(rig.records.items(), rig.now) == []
    again = Rig(bridge=bridge, agv=rig.agv, now=rig.now)
    again.records = rig.records
    again.sent = list(rig.sent)
    return again


def test_a_restarted_master_takes_up_the_order_the_agv_still_runs() -> None:
    """Mid-order restart: the AGV's next state (same orderId) continues the step, which is
    done with its first attempt and its one order; a re-sent Assign makes no second order."""
    rig = Rig()
    rig.assign()
    rig.run_until(lambda r: "StepProgress" in r.kinds())
    rig.run(4)
    assert rig.agv.driving and rig.agv.nodes
    rig = _restarted(rig, downtime=5.0)
    assert rig.bridge.handles(Publish(f"fleetflow/v1/{rig.bridge.facility}/agent/{S}/cmd",
                                      Cancel(command_id="x", workflow_id="w", step_id="s")))
    rig.assign()  # the same step and attempt again: nothing new
    rig.run_until(lambda r: bool(r.done()), 60)
    (done,) = rig.done()
    assert done.attempt == 1 and len(rig.orders()) == 1
    assert done.outputs["order_id"] == rig.orders()[0]
    assert not any(isinstance(i, StepFailed) for i in rig.inputs)


def test_order_ids_and_header_ids_keep_counting_after_a_restart() -> None:
    """No orderId or actionId is used twice, and headerIds go on per topic."""
    rig = Rig(speed=10.0)
    rig.assign()
    rig.run_until(lambda r: bool(r.done()), 30)
    rig.command(Pause(command_id="p1"))
    rig = _restarted(rig, downtime=1.0)
    rig.assign("s2", "dock", command_id="a2")
    rig.command(Pause(command_id="p2"))
    first, second = rig.orders()
    assert first.rsplit(".", 1)[1] < second.rsplit(".", 1)[1]
    pauses = rig.instants("startPause")
    assert pauses[0]["actions"][0]["actionId"] != pauses[1]["actions"][0]["actionId"]
    assert pauses[1]["headerId"] == pauses[0]["headerId"] + 1
    orders = [m for k, m in rig.sent if k == "order"]
    assert orders[-1]["headerId"] == orders[-2]["headerId"] + 1


def test_sync_points_and_cancels_waiting_survive_a_restart() -> None:
    """The barrier an AGV arrives at and a Cancel waiting for the AGV to stop are kept: after
    the restart the cancel is acknowledged, and a later step's arrival is made."""
    rig = Rig()
    rig.assign()
    rig.run_until(lambda r: "StepStarted" in r.kinds())
    rig.run(3)
    rig.command(Cancel(command_id="c1", workflow_id="w1", step_id="s1"))
    rig = _restarted(rig, downtime=0.5)
    rig.run_until(lambda r: bool(r.acks()), 20)
    assert rig.acks() == [("c1", "done", "")]
    rig.command(Assign(command_id="a2", workflow_id="w2", step_id="bring", kind="robot",
                       location="p1", sync_point="meet"))
    rig = _restarted(rig, downtime=0.0)
    rig.run_until(lambda r: bool(r.done()), 60)
    assert [(i.workflow_id, i.step_id) for i in rig.inputs if isinstance(i, SyncArrival)] == [
        ("w2", "meet")]


def test_progress_after_a_restart_is_reported_once() -> None:
    """Progress and start already reported are not reported again after a restart."""
    m = VdaMaster()
    online(m)
    (order,) = messages(m.assign(M, S, workflow_id="wf1", step_id="s1", now=T0, path=line(4)))
    m.handle(f"uagv/v2/{M}/{S}/state", order_state(order.message), T0 + 1)
    again = VdaMaster()
    again.load(_records(m), T0 + 10)
    out = outcomes(again.handle(f"uagv/v2/{M}/{S}/state", order_state(order.message), T0 + 11))
    assert out == []
    last = order_state(order.message, lastNodeId="n3", lastNodeSequenceId=6, nodeStates=[],
                       edgeStates=[])
    kinds = [type(o) for o in outcomes(again.handle(f"uagv/v2/{M}/{S}/state", last, T0 + 12))]
    assert kinds == [VdaStepProgress, VdaStepDone]


# --- the store --------------------------------------------------------------------------


def test_vda_records_commit_with_the_events_and_read_back(tmp_path: Path) -> None:
    """Records go into the batch's WriteBatch (None deletes); a refused batch writes none."""
    with EventStore(tmp_path / "s", "fac-a") as s:
        s.append(make_events(1, 2, random.Random(1)), vda={b"agv/a/1": b"x", b"master": b"y"})
        s.append([], vda={b"agv/a/1": None, b"agv/a/2": b"z"})
        with pytest.raises(StoreOrderError):
            s.append(make_events(9, 1, random.Random(2)), vda={b"master": b"lost"})
    with EventStore(tmp_path / "s", "fac-a") as s:
        assert s.vda_records() == [(b"agv/a/2", b"z"), (b"master", b"y")]


def test_a_store_without_the_vda_family_opens_read_only_and_gets_it_read_write(
        tmp_path: Path) -> None:
    """A store from before the VDA records opens read-only (none), and read-write adds it."""
    with EventStore(tmp_path / "s", "fac-a") as s:
        s.append(make_events(1, 3, random.Random(2)))
    families = {n: Options(raw_mode=True) for n in Rdict.list_cf(str(tmp_path / "s"))
                if n != "default"}
    db = Rdict(str(tmp_path / "s"), Options(raw_mode=True), column_families=families)
    db.drop_column_family("vda")
    db.close()
    with EventStore(tmp_path / "s", "fac-a", read_only=True) as reader:
        assert reader.last_seq == 3 and reader.vda_records() == []
    with EventStore(tmp_path / "s", "fac-a") as s:
        s.append([], vda={b"master": b"m"})
        assert s.vda_records() == [(b"master", b"m")]


def test_a_store_with_a_family_of_a_later_build_still_opens(tmp_path: Path) -> None:
    """RocksDB opens a database read-write only with all its families: one this build does
    not know (a later build's) is opened and left alone."""
    EventStore(tmp_path / "s", "fac-a").close()
    families = {n: Options(raw_mode=True) for n in Rdict.list_cf(str(tmp_path / "s"))
                if n != "default"}
    opts = Options(raw_mode=True)
    opts.create_missing_column_families(True)
    db = Rdict(str(tmp_path / "s"), opts,
               column_families={**families, "later": Options(raw_mode=True)})
    db.close()
    with EventStore(tmp_path / "s", "fac-a") as s:
        s.append(make_events(1, 2, random.Random(3)))
        assert s.last_seq == 2
