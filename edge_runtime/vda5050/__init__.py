"""VDA 5050 2.x master control (sans-IO) and its bridge to the workflow core.

``VdaMaster`` turns steps into orders and instant actions and AGV states into outcomes;
``VdaBridge`` translates between those outcomes and the core's native inputs. The shell
carries the JSON messages (``uagv/v2/...``). What both know is kept as durable records
(``VdaBridge.changed``/``load``, ``encode_record``/``decode_record``). ``VdaHealth`` makes the
link health the shell publishes on ``edge/vda`` (not a record).
"""

from edge_runtime.vda5050._bridge import VdaBridge, VdaTranslation
from edge_runtime.vda5050._health import VdaHealth
from edge_runtime.vda5050._master import VdaMaster, vda_timestamp
from edge_runtime.vda5050._order import (
    VERSION_ONLY_FIELDS,
    ActionSpec,
    OrderPlan,
    PathNode,
    actions_for,
    path_from_graph,
    strip_for_version,
)
from edge_runtime.vda5050._outcomes import (
    VdaAgvLost,
    VdaAgvOnline,
    VdaInstantResult,
    VdaMessage,
    VdaOutcome,
    VdaOutput,
    VdaPaused,
    VdaSafety,
    VdaStepCancelled,
    VdaStepDone,
    VdaStepFailed,
    VdaStepProgress,
    VdaStepStarted,
)
from edge_runtime.vda5050._persist import RecordError, decode_record, encode_record
from edge_runtime.vda5050._records import Counters
from edge_runtime.vda5050._session import (
    AgvSession,
    Connection,
    RobotStep,
    RunningOrder,
    SentInstant,
)

__all__ = [
    "VERSION_ONLY_FIELDS",
    "ActionSpec",
    "AgvSession",
    "Connection",
    "Counters",
    "OrderPlan",
    "PathNode",
    "RecordError",
    "RobotStep",
    "RunningOrder",
    "SentInstant",
    "VdaAgvLost",
    "VdaAgvOnline",
    "VdaBridge",
    "VdaHealth",
    "VdaInstantResult",
    "VdaMaster",
    "VdaMessage",
    "VdaOutcome",
    "VdaOutput",
    "VdaPaused",
    "VdaSafety",
    "VdaStepCancelled",
    "VdaStepDone",
    "VdaStepFailed",
    "VdaStepProgress",
    "VdaStepStarted",
    "VdaTranslation",
    "actions_for",
    "decode_record",
    "encode_record",
    "path_from_graph",
    "strip_for_version",
    "vda_timestamp",
]
