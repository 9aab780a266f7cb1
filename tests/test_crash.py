"""kill -9 of a writer under load never loses an acknowledged event nor breaks recovery."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_crash_writer import Counts

from edge_runtime.core import TimerFired
from edge_runtime.store import EventStore, recover

WRITER = Path(__file__).with_name("test_crash_writer.py")
ROOT = Path(__file__).resolve().parents[1]
KILLS = 22
# The checkout first on the path, as pytest's `pythonpath` does for the test process itself.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _run_and_kill(path: Path, seed: int, rng: random.Random) -> int:
    """Start the writer, SIGKILL it at a random moment; the highest seq it acknowledged."""
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(path), str(seed)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if not first:
            raise AssertionError(f"writer died: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(rng.uniform(0.0, 0.4))
        proc.kill()
        proc.wait(timeout=10)
        rest = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    acked = [int(line) for line in (first + rest).split()]
    assert acked == sorted(acked)
    return acked[-1]


@pytest.mark.slow
def test_kill_minus_nine_loses_no_acknowledged_event(tmp_path: Path) -> None:
    """After each of 22 SIGKILLs, every acked event is there, contiguous, and recovery is exact;
    the inputs recorded with the events are there exactly as far as the events are."""
    rng = random.Random(5050)
    path = tmp_path / "store"
    snapshots_seen = 0
    for round_no in range(KILLS):
        acked = _run_and_kill(path, round_no, rng)
        with EventStore(path, "crash-fac", read_only=round_no % 2 == 1) as store:
            assert store.last_seq >= acked
            full = Counts()
            for expected, event in enumerate(store.read(), start=1):
                assert event.seq == expected
                full.apply(event)
            assert full.last_seq == store.last_seq
            # The inputs are committed with their events: never one more, never one less.
            assert store.input_count() == store.last_seq
            tail = max(0, store.last_seq - 3)
            assert [r.input for r in store.recorded_inputs(tail)] == [
                TimerFired(f"t{seq}") for seq in range(tail + 1, store.last_seq + 1)]
            assert recover(store, Counts.restore, Counts) == full
            snapshots_seen += len(store.snapshot_seqs())
    assert snapshots_seen > 0, "the writer never snapshotted: recovery from a snapshot untested"
