"""Per-facility edge runtime: sans-IO core, RocksDB store, MQTT shell, VDA 5050 adapter.

The core lives in ``edge_runtime.core``, the event store in ``edge_runtime.store``; this
package re-exports the shell, the facility map, the intake and the shared data types.
"""

from edge_runtime._config import EdgeConfig
from edge_runtime._effects import Append, Archive, CancelTimer, Effect, Publish, SetTimer
from edge_runtime._event import Event, decode_event, encode_event
from edge_runtime._intake import REJECT_REASONS, Inbound, Intake, Reject, VdaInbound
from edge_runtime._map import FacilityMap, MapError, Node, Zone, load_map
from edge_runtime._metrics import EdgeMetrics
from edge_runtime._shell import EdgeRuntime
from edge_runtime._timers import TimerHeap
from edge_runtime._vda5050 import *  # noqa: F403
from edge_runtime._vda5050 import __all__ as _vda_all

__all__ = [
    "REJECT_REASONS",
    "Append",
    "Archive",
    "CancelTimer",
    "EdgeConfig",
    "EdgeMetrics",
    "EdgeRuntime",
    "Effect",
    "Event",
    "FacilityMap",
    "Inbound",
    "Intake",
    "MapError",
    "Node",
    "Publish",
    "Reject",
    "SetTimer",
    "TimerHeap",
    "VdaInbound",
    "Zone",
    "decode_event",
    "encode_event",
    "load_map",
    *_vda_all,
]
