"""``edge_runtime.store``: the facility's durable event log, recovery, and the workflow cache.

See docs/store.md for the durability of each sync mode, recovery and backups.
"""

from __future__ import annotations

from pathlib import Path

from edge_runtime.core import decode_workflow_record
from edge_runtime.store._cache import WorkflowCache
from edge_runtime.store._errors import (
    FacilityMismatch,
    StoreError,
    StoreLocked,
    StoreOrderError,
    StoreVersionError,
)
from edge_runtime.store._inputs import (
    BootRecord,
    RecordedInput,
    encode_boot,
    encode_input,
    refusal,
)
from edge_runtime.store._layout import SCHEMA_VERSION, seq_key
from edge_runtime.store._log import SyncMode
from edge_runtime.store._recovery import (
    Projection,
    maybe_snapshot,
    recover,
    replay,
    replays_to_snapshot,
    state_at,
)
from edge_runtime.store._store import EventStore, StoredSnapshot

__all__ = [
    "SCHEMA_VERSION",
    "STORE_DIRNAME",
    "BootRecord",
    "EventStore",
    "FacilityMismatch",
    "Projection",
    "RecordedInput",
    "StoreError",
    "StoreLocked",
    "StoreOrderError",
    "StoreVersionError",
    "StoredSnapshot",
    "SyncMode",
    "WorkflowCache",
    "decode_workflow_record",
    "encode_boot",
    "encode_input",
    "maybe_snapshot",
    "recover",
    "refusal",
    "replay",
    "replays_to_snapshot",
    "seq_key",
    "state_at",
    "store_path",
]

STORE_DIRNAME = "store"
"""Name of the RocksDB directory inside an edge's ``--data`` directory."""


def store_path(data_dir: str | Path) -> Path:
    """Where an edge keeps its event store: ``DATA/store``, or ``DATA`` if it is the store."""
    data = Path(data_dir)
    if (data / "CURRENT").exists():
        return data
    return data / STORE_DIRNAME
