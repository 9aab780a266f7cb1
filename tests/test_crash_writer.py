"""Not tests: the counting projection the store tests use, and the crash test's writer process.

``python tests/test_crash_writer.py STORE SEED`` appends events in synced batches for ever and
prints each acknowledged seq after ``append`` returned; the crash test kills it with SIGKILL.
"""

from __future__ import annotations

import random
import sys
from typing import Any

import msgpack

from edge_runtime.core import Event, TimerFired
from edge_runtime.store import EventStore, encode_input, maybe_snapshot, recover, seq_key


class Counts:
    """A real projection: events per workflow, and the kinds seen, with the last seq."""

    def __init__(self) -> None:
        self.last_seq = 0
        self.counts: dict[str, int] = {}
        self.kinds: dict[str, int] = {}

    def apply(self, event: Event) -> None:
        if event.seq != self.last_seq + 1:
            raise ValueError(f"event {event.seq} after {self.last_seq}")
        self.last_seq = event.seq
        wid = event.workflow_id or "-"
        self.counts[wid] = self.counts.get(wid, 0) + 1
        self.kinds[event.kind] = self.kinds.get(event.kind, 0) + 1

    def snapshot(self) -> bytes:
        return msgpack.packb([self.last_seq, self.counts, self.kinds])

    @classmethod
    def restore(cls, data: bytes) -> Counts:
        projection = cls()
        projection.last_seq, projection.counts, projection.kinds = msgpack.unpackb(data)
        return projection

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Counts) and (self.last_seq, self.counts, self.kinds) == (
            other.last_seq, other.counts, other.kinds
        )

    __hash__ = None  # type: ignore[assignment]


def make_events(first_seq: int, n: int, rng: random.Random, hlc0: int = 0) -> list[Event]:
    """``n`` events from ``first_seq`` with non-decreasing hlc and a few workflows."""
    return [
        Event(
            seq, (hlc0 + seq) << 4, rng.choice(("created", "step_done", "completed")),
            f"wf-{rng.randrange(40)}", {"n": seq, "pad": "x" * rng.randrange(60)},
        )
        for seq in range(first_seq, first_seq + n)
    ]


def main(path: str, seed: int) -> None:
    rng = random.Random(seed)
    with EventStore(path, "crash-fac", sync="batch", snapshot_every=300) as store:
        projection = recover(store, Counts.restore, Counts)
        while True:
            events = make_events(store.last_seq + 1, rng.randrange(1, 120), rng)
            done = {e.workflow_id: b"final" for e in events if e.kind == "completed"}
            # One recorded input per event, in the events' WriteBatch: input i made event i+1.
            inputs = {seq_key(e.seq - 1): encode_input(TimerFired(f"t{e.seq}"), float(e.seq))
                      for e in events}
            store.append(events, {k: v for k, v in done.items() if k}, inputs=inputs)
            sys.stdout.write(f"{events[-1].seq}\n")
            sys.stdout.flush()
            for event in events:
                projection.apply(event)
            maybe_snapshot(store, projection)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
