"""The event store: append/read, ordering, snapshots, point-in-time, locking, backup."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rocksdict import Options, Rdict
from test_crash_writer import Counts, make_events

from edge_runtime.core import Event, encode_event
from edge_runtime.store import (
    SCHEMA_VERSION,
    EventStore,
    FacilityMismatch,
    StoreError,
    StoreLocked,
    StoreOrderError,
    StoreVersionError,
    maybe_snapshot,
    recover,
    replay,
    state_at,
    store_path,
)
from topics import ProtocolError, encode

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    with EventStore(tmp_path / "store", "fac-a", snapshot_every=100) as s:
        yield s


def _fill(store: EventStore, n: int, batch: int = 50, seed: int = 1) -> None:
    rng = random.Random(seed)
    while store.last_seq < n:
        store.append(make_events(store.last_seq + 1, min(batch, n - store.last_seq), rng))


def test_append_then_read_returns_the_events(store: EventStore) -> None:
    """What was appended reads back equal, in seq order, over any range."""
    events = make_events(1, 2500, random.Random(2))
    store.append(events[:1000])
    store.append(events[1000:])
    assert store.last_seq == 2500
    assert list(store.read()) == events
    assert list(store.read(1000, 1100)) == events[999:1100]
    assert list(store.read(2501)) == []


def test_gap_in_seq_is_refused_and_nothing_is_written(store: EventStore) -> None:
    """A batch that skips a seq raises StoreOrderError naming the expected seq; log unchanged."""
    store.append(make_events(1, 5, random.Random(3)))
    bad = make_events(6, 3, random.Random(3))
    bad[2] = Event(10, bad[2].hlc, "x")
    with pytest.raises(StoreOrderError, match="expects seq 8"):
        store.append(bad)
    with pytest.raises(StoreOrderError, match="expects seq 6"):
        store.append(make_events(5, 1, random.Random(3)))
    assert store.last_seq == 5
    assert [e.seq for e in store.read()] == [1, 2, 3, 4, 5]


def test_hlc_going_back_is_refused(store: EventStore) -> None:
    """An event older (by hlc) than its predecessor is refused, nothing written."""
    store.append([Event(1, 100, "a")])
    with pytest.raises(StoreOrderError, match="hlc"):
        store.append([Event(2, 100, "b"), Event(3, 99, "c")])
    assert store.last_seq == 1


def test_reopen_after_close_keeps_everything(tmp_path: Path) -> None:
    """Closing (twice) and reopening gives back the log, snapshots and workflow records."""
    path = tmp_path / "s"
    s = EventStore(path, "fac-a", snapshot_every=10)
    s.append(make_events(1, 30, random.Random(4)), {"wf-1": b"done"})
    s.save_snapshot(20, b"snap")
    s.close()
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.append(make_events(31, 1, random.Random(4)))
    with EventStore(path, "fac-a") as again:
        assert again.last_seq == 30
        assert again.latest_snapshot() == (20, b"snap")
        assert again.workflow_record("wf-1") == b"done"
        again.append(make_events(31, 1, random.Random(4)))
        assert again.last_seq == 31


def test_missing_store_without_create_is_an_error(tmp_path: Path) -> None:
    """create=False on an empty directory does not make a store."""
    with pytest.raises(StoreError, match="no event store"):
        EventStore(tmp_path / "nothing", "fac-a", create=False)
    assert not (tmp_path / "nothing").exists()


def test_other_facility_is_refused(tmp_path: Path) -> None:
    """A store of facility A does not open as facility B."""
    EventStore(tmp_path / "s", "fac-a").close()
    with pytest.raises(FacilityMismatch, match="'fac-a', not 'fac-b'"):
        EventStore(tmp_path / "s", "fac-b")
    EventStore(tmp_path / "s", "fac-a").close()  # the failed open released the lock


def _families(path: Path) -> dict[str, Options]:
    """Every column family of the store at ``path`` (RocksDB opens all or refuses)."""
    return {n: Options(raw_mode=True) for n in Rdict.list_cf(str(path)) if n != "default"}


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    """A store written by schema version N+1 is refused, naming both versions."""
    EventStore(tmp_path / "s", "fac-a").close()
    opts = Options(raw_mode=True)
    db = Rdict(str(tmp_path / "s"), opts, column_families=_families(tmp_path / "s"))
    meta = db.get_column_family("meta")
    meta[b"schema_version"] = msgpack.packb(SCHEMA_VERSION + 1)
    meta.close()
    db.close()
    newer = f"version {SCHEMA_VERSION + 1}.*version {SCHEMA_VERSION}"
    with pytest.raises(StoreVersionError, match=newer):
        EventStore(tmp_path / "s", "fac-a")
    with pytest.raises(StoreVersionError):
        EventStore(tmp_path / "s", "fac-a", read_only=True)


def test_tampered_metadata_is_refused(tmp_path: Path) -> None:
    """A log whose end disagrees with the recorded last seq is refused, and the lock released."""
    with EventStore(tmp_path / "s", "fac-a") as s:
        s.append(make_events(1, 5, random.Random(8)))
    db = Rdict(str(tmp_path / "s"), Options(raw_mode=True),
               column_families=_families(tmp_path / "s"))
    events = db.get_column_family("events")
    del events[(5).to_bytes(8, "big")]
    events.close()
    db.close()
    with pytest.raises(StoreError, match="last seq 5, its log ends at 4"):
        EventStore(tmp_path / "s", "fac-a")
    with pytest.raises(StoreError, match="inconsistent"):
        EventStore(tmp_path / "s", "fac-a")  # not StoreLocked: the refused open let go


def test_snapshot_plus_tail_equals_full_replay(store: EventStore) -> None:
    """Recovery from the newest automatic snapshot equals replaying the whole log."""
    projection = Counts()
    rng = random.Random(5)
    for _ in range(40):
        events = make_events(store.last_seq + 1, rng.randrange(1, 30), rng)
        store.append(events)
        for e in events:
            projection.apply(e)
        maybe_snapshot(store, projection)
    seqs = store.snapshot_seqs()
    assert 0 < len(seqs) <= store.keep_snapshots
    assert seqs[-1] < store.last_seq  # there is a tail to replay
    assert recover(store, Counts.restore, Counts) == projection
    assert replay(store, Counts()) == projection


def test_unreadable_snapshot_falls_back_to_an_older_one(store: EventStore) -> None:
    """A snapshot that does not restore is skipped; recovery still equals a full replay."""
    _fill(store, 300)
    good = replay(store, Counts(), 100)
    store.save_snapshot(100, good.snapshot())
    store.save_snapshot(200, b"\xc1 garbage")
    assert recover(store, Counts.restore, Counts) == replay(store, Counts())


def test_prune_keeps_the_newest_snapshots(store: EventStore) -> None:
    """Pruning deletes the oldest snapshots and keeps K."""
    _fill(store, 50)
    for seq in (10, 20, 30, 40, 50):
        store.save_snapshot(seq, b"%d" % seq)
    assert store.prune_snapshots(keep=2) == 3
    assert store.snapshot_seqs() == [40, 50]
    assert store.snapshot_at_or_before(45) == (40, b"40")
    assert store.snapshot_at_or_before(39) is None


def test_snapshot_beyond_the_log_is_refused(store: EventStore) -> None:
    """A snapshot of state that is not durable cannot be saved."""
    _fill(store, 5)
    with pytest.raises(StoreError, match=r"1\.\.5"):
        store.save_snapshot(6, b"x")


def test_state_at_seq_equals_replay_to_that_seq(store: EventStore) -> None:
    """Point-in-time by seq: nearest snapshot at or before, then replay up to it."""
    _fill(store, 1000)
    store.save_snapshot(400, replay(store, Counts(), 400).snapshot())
    for seq in (0, 1, 399, 400, 401, 777, 1000):
        assert state_at(store, Counts.restore, Counts, seq=seq) == replay(store, Counts(), seq)
    with pytest.raises(StoreError, match="outside"):
        state_at(store, Counts.restore, Counts, seq=1001)


def test_state_at_time_uses_the_hlc(tmp_path: Path) -> None:
    """Point-in-time by unix time: the state after the last event at or before that time."""
    with EventStore(tmp_path / "s", "fac-a") as s:
        base_ms = 1_760_000_000_000
        s.append([Event(i, ((base_ms + i * 1000) << 16) | i, "k", f"wf-{i % 3}")
                  for i in range(1, 101)])
        assert s.seq_at_time(base_ms / 1000) == 0
        assert s.seq_at_time((base_ms + 1000) / 1000) == 1
        assert s.seq_at_time((base_ms + 50_500) / 1000) == 50
        assert s.seq_at_time(2e9) == 100
        at = state_at(s, Counts.restore, Counts, ts=(base_ms + 42_000) / 1000)
        assert at == replay(s, Counts(), 42)


@settings(max_examples=25, deadline=None)
@given(hlcs=st.lists(st.integers(0, 50), min_size=1, max_size=60), probe=st.integers(-1, 60))
def test_seq_at_hlc_is_the_last_event_not_after(tmp_path_factory: pytest.TempPathFactory,
                                                hlcs: list[int], probe: int) -> None:
    """Binary search over hlc agrees with a linear scan for any non-decreasing hlc sequence."""
    hlcs.sort()
    with EventStore(tmp_path_factory.mktemp("h") / "s", "fac-a", sync="none") as s:
        s.append([Event(i + 1, h, "k") for i, h in enumerate(hlcs)])
        expected = max((i + 1 for i, h in enumerate(hlcs) if h <= probe), default=0)
        assert s.seq_at_hlc(probe) == expected


_ids = st.from_regex(r"[a-z][a-z0-9_.-]{0,20}", fullmatch=True)


@settings(max_examples=40, deadline=None)
@given(
    hlc=st.integers(0, 2**62), kind=_ids, wid=st.none() | _ids,
    data=st.dictionaries(
        st.text(max_size=8), st.integers(-(2**63), 2**64 - 1) | st.text() | st.booleans()
    ),
)
def test_store_keeps_each_event_as_its_edge_events_payload(
        tmp_path_factory: pytest.TempPathFactory, hlc: int, kind: str, wid: str | None,
        data: dict[str, object]) -> None:
    """What append stores and returns is the event's edge/events payload; it reads back."""
    event = Event(1, hlc, kind, wid, data)
    try:
        wire = encode(event.to_wire("fac-a"))
    except ProtocolError:  # e.g. a string msgpack cannot hold: the store refuses it too
        wire = None
    with EventStore(tmp_path_factory.mktemp("p") / "s", "fac-a", sync="none") as s:
        if wire is None:
            with pytest.raises(StoreError, match="does not encode"):
                s.append([event])
            return
        assert s.append([event]) == [wire]
        assert list(s.read_payloads()) == [wire]
        assert list(s.read()) == [event]


def _as_schema_1(path: Path, events: list[Event]) -> None:
    """Rewrite a store as a schema-1 build left it: events in ``encode_event``'s form."""
    db = Rdict(str(path), Options(raw_mode=True), column_families=_families(path))
    meta, stored = db.get_column_family("meta"), db.get_column_family("events")
    meta[b"schema_version"] = msgpack.packb(1)
    for event in events:
        stored[event.seq.to_bytes(8, "big")] = encode_event(event)
    meta.close()
    stored.close()
    db.close()


def test_schema_1_store_reads_on_and_is_marked_schema_2(tmp_path: Path) -> None:
    """A store of the compact schema-1 form reads as before, and new events join it."""
    old = make_events(1, 40, random.Random(9))
    with EventStore(tmp_path / "s", "fac-a") as s:
        s.append(old)
    _as_schema_1(tmp_path / "s", old)
    payloads = [encode(e.to_wire("fac-a")) for e in old]
    with EventStore(tmp_path / "s", "fac-a", read_only=True) as reader:
        assert list(reader.read()) == old
        assert list(reader.read_payloads()) == payloads
    new = make_events(41, 10, random.Random(10))
    with EventStore(tmp_path / "s", "fac-a") as s:
        assert list(s.read()) == old and s.seq_at_hlc(old[-1].hlc) == 40
        payloads += s.append(new)
        assert list(s.read()) == old + new
        assert list(s.read_payloads()) == payloads
    db = Rdict(str(tmp_path / "s"), Options(raw_mode=True),
               column_families=_families(tmp_path / "s"))
    meta = db.get_column_family("meta")
    assert msgpack.unpackb(meta[b"schema_version"]) == SCHEMA_VERSION == 2
    meta.close()
    db.close()


def test_workflow_records_commit_with_the_events(store: EventStore) -> None:
    """Terminal workflow records are written in the batch of their events; None deletes."""
    store.append(make_events(1, 3, random.Random(6)), {"wf-9": b"final-9"})
    assert store.workflow_record("wf-9") == b"final-9"
    store.append([], {"wf-9": None})
    assert store.workflow_record("wf-9") is None
    with pytest.raises(StoreOrderError):
        store.append(make_events(9, 1, random.Random(6)), {"wf-8": b"x"})
    assert store.workflow_record("wf-8") is None


def test_unencodable_event_is_refused(store: EventStore) -> None:
    """An event msgpack cannot hold, or whose payload a hub would refuse as too large,
    raises StoreError; nothing is written."""
    with pytest.raises(StoreError, match="does not encode"):
        store.append([Event(1, 1, "k", None, {"x": object()})])
    with pytest.raises(StoreError, match="65536"):
        big = Event(4, 1 << 20, "k", None, {f"k{i}": "y" * 1000 for i in range(70)})
        store.append([*make_events(1, 3, random.Random(6)), big])
    assert store.last_seq == 0 and list(store.read()) == []


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    """Unknown sync mode, bad facility name, or no facility read-write: clear StoreError."""
    with pytest.raises(StoreError, match="sync must be"):
        EventStore(tmp_path / "s", "fac-a", sync="always")  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="facility"):
        EventStore(tmp_path / "s", "bad facility")
    with pytest.raises(StoreError, match="facility is required"):
        EventStore(tmp_path / "s", None)


@pytest.mark.parametrize("mode", ["batch", "interval", "none"])
def test_every_sync_mode_commits(tmp_path: Path, mode: str) -> None:
    """Each sync mode stores the events; sync() forces them to disk."""
    with EventStore(tmp_path / "s", "fac-a", sync=mode, sync_interval_s=0.0) as s:  # type: ignore[arg-type]
        _fill(s, 120, batch=7)
        s.sync()
    with EventStore(tmp_path / "s", "fac-a") as s:
        assert [e.seq for e in s.read()] == list(range(1, 121))


def test_interval_mode_syncs_a_quiet_tail(tmp_path: Path) -> None:
    """In interval mode an unsynced last write is fsynced by the background syncer."""
    import time

    with EventStore(tmp_path / "s", "fac-a", sync="interval", sync_interval_s=0.5) as s:
        s.append(make_events(1, 10, random.Random(7)))  # first write: synced (interval passed)
        s.append(make_events(11, 10, random.Random(7)))  # within the interval: not synced
        assert s._unsynced
        deadline = time.monotonic() + 5
        while s._unsynced and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not s._unsynced


def test_backup_in_process_opens_and_holds_the_events(store: EventStore, tmp_path: Path) -> None:
    """A checkpoint backup of the writer opens as a store with the same events."""
    _fill(store, 500)
    assert store.backup(tmp_path / "bk") == 500
    with pytest.raises(StoreError, match="exists"):
        store.backup(tmp_path / "bk")
    with EventStore(tmp_path / "bk", "fac-a", create=False) as copy:
        assert list(copy.read()) == list(store.read())


HOLDER = """
import sys, random
sys.path.insert(0, {tests!r})
from test_crash_writer import make_events
from edge_runtime.store import EventStore
s = EventStore({path!r}, "fac-a")
s.append(make_events(1, 777, random.Random(1)), {{"wf-1": b"end"}})
print("ready", flush=True)
sys.stdin.readline()
"""


def test_second_process_is_locked_out_but_can_read_and_back_up(tmp_path: Path) -> None:
    """While a real process holds the store: read-write open fails, read-only and backup work."""
    path = tmp_path / "data" / "store"
    code = HOLDER.format(tests=str(Path(__file__).parent), path=str(path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLocked, match="only one edge") as info:
            EventStore(path, "fac-a")
        assert str(path) in str(info.value) and "read_only=True" in str(info.value)
        with EventStore(path, "fac-a", read_only=True) as reader:
            assert reader.last_seq == 777
            at_500 = state_at(reader, Counts.restore, Counts, seq=500)
            assert at_500 == replay(reader, Counts(), 500)
            with pytest.raises(StoreError, match="read-only"):
                reader.append(make_events(778, 1, random.Random(1)))
            assert reader.backup(tmp_path / "bk") == 777
        with EventStore(tmp_path / "bk", "fac-a") as copy:
            assert copy.last_seq == 777 and copy.workflow_record("wf-1") == b"end"
            assert [e.seq for e in copy.read()] == list(range(1, 778))
        cli = subprocess.run(
            [sys.executable, "-m", "fleetflow", "edge", "backup", str(tmp_path / "bk2"),
             "--data", str(tmp_path / "data")],
            capture_output=True, text=True, env=ENV, timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        assert "777" in cli.stdout
        with EventStore(tmp_path / "bk2", "fac-a") as copy:
            assert copy.last_seq == 777
    finally:
        proc.kill()
        proc.wait()


def test_cli_backup_without_a_store_is_a_one_line_error(tmp_path: Path) -> None:
    """`fleetflow edge backup` on a directory without a store exits 2 with one line."""
    cli = subprocess.run(
        [sys.executable, "-m", "fleetflow", "edge", "backup", str(tmp_path / "bk"),
         "--data", str(tmp_path / "empty")],
        capture_output=True, text=True, env=ENV, timeout=60,
    )
    assert cli.returncode == 2
    assert cli.stderr.count("\n") == 1 and "no event store" in cli.stderr


def test_store_path_accepts_data_dir_or_store_dir(tmp_path: Path) -> None:
    """store_path finds DATA/store, or DATA itself when it already is a store."""
    assert store_path(tmp_path) == tmp_path / "store"
    EventStore(tmp_path / "store", "fac-a").close()
    assert store_path(tmp_path / "store") == tmp_path / "store"


def test_outbox_entries_commit_with_events_and_delete_on_ack(tmp_path: Path) -> None:
    """Commands kept in the outbox are durable with the batch, and gone once acknowledged."""
    with EventStore(tmp_path / "s", "fac-a") as s:
        s.append(make_events(1, 2, random.Random(1)), outbox={b"a1\0c1": b"x", b"a1\0c2": b"y"})
        s.append([], outbox={b"a1\0c1": None})
    with EventStore(tmp_path / "s", "fac-a") as s:
        assert s.outbox() == [(b"a1\0c2", b"y")] and s.last_seq == 2


def test_store_without_an_outbox_family_opens_read_only(tmp_path: Path) -> None:
    """A store from before the outbox existed still opens read-only (and has none)."""
    with EventStore(tmp_path / "s", "fac-a") as s:
        s.append(make_events(1, 3, random.Random(2)))
    db = Rdict(str(tmp_path / "s"), Options(raw_mode=True),
               column_families=_families(tmp_path / "s"))
    db.drop_column_family("outbox")
    db.close()
    with EventStore(tmp_path / "s", "fac-a", read_only=True) as reader:
        assert reader.last_seq == 3 and reader.outbox() == []
