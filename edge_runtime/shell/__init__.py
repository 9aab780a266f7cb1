"""The edge's I/O shell: MQTT in, batches through the core, group commit, then publish.

``EdgeRuntime`` is the process (``fleetflow edge``); ``Intake`` validates inbound messages;
``TimerHeap`` turns the core's timers into ``TimerFired`` inputs; ``EdgeMetrics`` exports
Prometheus metrics; ``Delivery`` keeps the edge's half of end-to-end delivery (event acks,
the command outbox).
"""

from edge_runtime.shell._config import EdgeConfig
from edge_runtime.shell._delivery import Delivery
from edge_runtime.shell._intake import REJECT_REASONS, Inbound, Intake, Reject, VdaInbound
from edge_runtime.shell._metrics import EdgeMetrics
from edge_runtime.shell._mqtt import BufferedClient
from edge_runtime.shell._runtime import EdgeRuntime
from edge_runtime.shell._timers import TimerHeap
from edge_runtime.shell._wiring import map_cost, verify_log

__all__ = [
    "REJECT_REASONS",
    "BufferedClient",
    "Delivery",
    "EdgeConfig",
    "EdgeMetrics",
    "EdgeRuntime",
    "Inbound",
    "Intake",
    "Reject",
    "TimerHeap",
    "VdaInbound",
    "map_cost",
    "verify_log",
]
