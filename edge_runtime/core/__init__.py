"""The sans-IO workflow engine of a facility (docs/design.md §3-§6): public names.

Nothing here reads a clock, a file or a socket: ``Core.handle(input, now)`` returns effects
(events to append, messages to publish, timers to set) and the shell carries them out.

>>> from edge_runtime.core import Core
>>> Core("f1").last_seq
0
"""

from edge_runtime.core._assignment import min_cost_assignment
from edge_runtime.core._command_args import BadArguments
from edge_runtime.core._config import CoreConfig, CostFunction
from edge_runtime.core._conflict import ConflictView
from edge_runtime.core._core import Core, Input
from edge_runtime.core._dependency_rules import (
    DEPENDENCY_TYPES,
    DependencyOutcome,
    SourceFacts,
    check_dependency,
    dependency_outcome,
    source_facts,
)
from edge_runtime.core._effects import Append, Archive, CancelTimer, Effect, Publish, SetTimer
from edge_runtime.core._errors import (
    CoreError,
    DependencyCycle,
    IllegalTransition,
    StaleInput,
    TemplateError,
    UnknownEntity,
)
from edge_runtime.core._event import Event, decode_event, encode_event
from edge_runtime.core._machine import (
    STEP_TERMINAL,
    WORKFLOW_TERMINAL,
    Machine,
    Transition,
    step_machine,
    workflow_machine,
)
from edge_runtime.core._state import Agent, FacilityState, StepRun, WorkflowRun
from edge_runtime.core._strategies_config import STRATEGIES, check_strategies
from edge_runtime.core._template import (
    Compensation,
    RetryPolicy,
    Step,
    Template,
    parse_template,
)
from edge_runtime.core._timers import Restarted, TimerFired
from edge_runtime.core._views import (
    AgentView,
    StepView,
    WorkflowView,
    decode_workflow_record,
    encode_workflow_record,
)

__all__ = [
    "DEPENDENCY_TYPES",
    "STEP_TERMINAL",
    "STRATEGIES",
    "WORKFLOW_TERMINAL",
    "Agent",
    "AgentView",
    "Append",
    "Archive",
    "BadArguments",
    "CancelTimer",
    "Compensation",
    "ConflictView",
    "Core",
    "CoreConfig",
    "CoreError",
    "CostFunction",
    "DependencyCycle",
    "DependencyOutcome",
    "Effect",
    "Event",
    "FacilityState",
    "IllegalTransition",
    "Input",
    "Machine",
    "Publish",
    "Restarted",
    "RetryPolicy",
    "SetTimer",
    "SourceFacts",
    "StaleInput",
    "Step",
    "StepRun",
    "StepView",
    "Template",
    "TemplateError",
    "TimerFired",
    "Transition",
    "UnknownEntity",
    "WorkflowRun",
    "WorkflowView",
    "check_dependency",
    "check_strategies",
    "decode_event",
    "decode_workflow_record",
    "dependency_outcome",
    "encode_event",
    "encode_workflow_record",
    "min_cost_assignment",
    "parse_template",
    "source_facts",
    "step_machine",
    "workflow_machine",
]
