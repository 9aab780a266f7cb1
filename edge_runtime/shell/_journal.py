"""Recording the core's inputs for a replay (``EdgeConfig.record_inputs``, ``--record-inputs``).

Every input the shell hands ``Core.handle`` (agent messages, hub commands, timer firings,
``Restarted``, the native inputs the VDA 5050 bridge derives) is kept, with the ``now`` it
was given and whether the core refused it, in the order it was handled. The records wait
here until the batch commits: ``CoreHost.commit`` writes them to the store's ``inputs``
family in the WriteBatch of the events they made, so an acknowledged event's inputs are
as durable as it is. A batch that made no events still writes its inputs (with the store's
sync mode: if that write is not synced, the next synced write makes the WAL up to it
durable, so the inputs never fall behind an event that is). ``edge_runtime.replay`` feeds
them through a core again.
"""

from __future__ import annotations

from pathlib import Path

from edge_runtime.core import Input
from edge_runtime.shell._config import EdgeConfig
from edge_runtime.store import BootRecord, encode_boot, encode_input, refusal, seq_key

__all__ = ["Journal", "boot_record"]


class Journal:
    """The core inputs of the batch in hand, to commit with its events."""

    def __init__(self, next_index: int) -> None:
        self._next = next_index
        """Key (counter) of the next record: the store's record count when opened."""
        self._records: list[bytes | list[object]] = []
        """Encoded boot records, or ``[input, now, refused, payload]`` (encoded at commit)."""
        self._wired: tuple[object, bytes] | None = None
        """The message last decoded from the wire, and its payload (``wire``)."""

    @property
    def pending(self) -> bool:
        """Whether records wait for the next commit."""
        return bool(self._records)

    def boot(self, record: BootRecord, now: float) -> None:
        """The edge opened its core (first of all its inputs)."""
        self._records.append(encode_boot(record, now))

    def wire(self, message: object, payload: bytes) -> None:
        """``message`` was decoded from ``payload``: if it is the next input recorded, its
        record keeps the payload as it came (a message decodes to the same from it)."""
        self._wired = (message, payload)

    def record(self, inbound: Input, now: float) -> None:
        """``inbound`` is handed to the core at ``now``."""
        wired, self._wired = self._wired, None
        payload = wired[1] if wired is not None and wired[0] is inbound else None
        self._records.append([inbound, now, None, payload])

    def refused(self, exc: BaseException) -> None:
        """The core raised on the input just recorded."""
        entry = self._records[-1]
        assert isinstance(entry, list)
        entry[2] = refusal(exc)

    def take(self) -> dict[bytes, bytes]:
        """The records to commit, by key; they are no longer pending."""
        out: dict[bytes, bytes] = {}
        for entry in self._records:
            if isinstance(entry, list):
                inbound, now, refused, payload = entry
                entry = encode_input(inbound, now, refused, payload)  # type: ignore[arg-type]
            out[seq_key(self._next)] = entry
            self._next += 1
        self._records.clear()
        return out


def boot_record(config: EdgeConfig, last_seq: int, templates: dict[str, str]) -> BootRecord:
    """What the edge makes its core with: its options that are data, the templates' and the
    map's documents."""
    map_path: Path | None = config.map_path
    return BootRecord(
        facility=config.facility, last_seq=last_seq, config=dict(config.extra),
        templates=templates, map_name=map_path.name if map_path else None,
        map_text=map_path.read_text(encoding="utf-8") if map_path else None)
