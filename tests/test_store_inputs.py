"""The store's ``inputs`` family (``--record-inputs``): written with the events, read back in
order, refused when unreadable, absent from older stores without harm."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest
from rocksdict import Options, Rdict

from edge_runtime.core import Event, Restarted, TimerFired
from edge_runtime.store import (
    BootRecord,
    EventStore,
    StoreError,
    StoreOrderError,
    encode_boot,
    encode_input,
    seq_key,
)
from topics import AgentConn, HubCommand, encode

F = "inp"


def _event(seq: int) -> Event:
    return Event(seq, seq << 16, "agent_joined", None, {"agent": f"a{seq}"})


def test_inputs_round_trip_in_order(tmp_path: Path) -> None:
    """A boot record, messages (one kept as its wire payload, one encoded), a timer and a
    restart come back as written, in order."""
    boot = BootRecord(F, 0, {"stall_factor": 2.0, "resource_order": ("a", "b")},
                      {"t.yaml": "name: t"}, "m.yaml", "nodes: {}")
    conn = AgentConn(agent_id="r1", online=True, capabilities=["lift"])
    cmd = HubCommand(command_id="c1", action="cancel_workflow", args={"workflow_id": "w"})
    with EventStore(tmp_path / "s", F) as store:
        store.append([_event(1)], inputs={
            seq_key(0): encode_boot(boot, 1.0), seq_key(1): encode_input(Restarted(), 1.5),
            seq_key(2): encode_input(conn, 2.0, None, encode(conn)),  # its wire payload kept
            seq_key(3): encode_input(cmd, 3.0, "workflow"),
            seq_key(4): encode_input(TimerFired("liveness:r1"), 4.0)})
        records = list(store.recorded_inputs())
        assert store.input_count() == 5
    assert records[0].boot == boot and records[0].input is None
    assert [r.input for r in records[1:]] == [Restarted(), conn, cmd, TimerFired("liveness:r1")]
    assert [r.now for r in records] == [1.0, 1.5, 2.0, 3.0, 4.0]
    assert [r.refused for r in records] == [None, None, None, "workflow", None]


def test_inputs_without_events_are_written(tmp_path: Path) -> None:
    """A batch whose inputs made no event still writes them (a timer that changed nothing)."""
    with EventStore(tmp_path / "s", F) as store:
        store.append([], inputs={seq_key(0): encode_input(TimerFired("x"), 1.0)})
        assert store.input_count() == 1 and store.last_seq == 0


def test_refused_append_writes_neither_events_nor_inputs(tmp_path: Path) -> None:
    """Inputs share the events' WriteBatch: an append refused for its order writes none."""
    with EventStore(tmp_path / "s", F) as store:
        with pytest.raises(StoreOrderError):
            store.append([_event(2)], inputs={seq_key(0): encode_input(TimerFired("x"), 1.0)})
        assert store.input_count() == 0 and store.last_seq == 0


def test_unknown_tag_is_a_clear_error(tmp_path: Path) -> None:
    """A record with a tag this build does not know names its index and the tag."""
    with EventStore(tmp_path / "s", F) as store:
        store.append([], inputs={seq_key(0): msgpack.packb(["z", 1.0, None, None])})
        with pytest.raises(StoreError, match="input record 0 has the unknown tag 'z'"):
            list(store.recorded_inputs())


def test_older_store_without_the_family_reads_as_no_inputs(tmp_path: Path) -> None:
    """A store written before ``inputs`` existed opens read-only with no inputs; a read-write
    open adds the family."""
    path = tmp_path / "s"
    with EventStore(path, F) as store:
        store.append([_event(1)])
    db = Rdict(str(path), Options(raw_mode=True),
               column_families={n: Options(raw_mode=True) for n in Rdict.list_cf(str(path))
                                if n != "default"})
    db.drop_column_family("inputs")
    db.close()
    assert "inputs" not in Rdict.list_cf(str(path))
    with EventStore(path, None, read_only=True) as old:
        assert old.input_count() == 0 and list(old.recorded_inputs()) == []
        assert old.last_seq == 1
    with EventStore(path, F) as upgraded:
        assert upgraded.input_count() == 0
    assert "inputs" in Rdict.list_cf(str(path))
