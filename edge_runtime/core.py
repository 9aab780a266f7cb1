"""The sans-IO workflow engine of a facility (DESIGN §3-§6): public names.

>>> from edge_runtime.core import Core
>>> Core("f1").last_seq
0
"""

from edge_runtime._commands import BadArguments
from edge_runtime._core import Core, Input, Restarted, TimerFired
from edge_runtime._core_errors import (
    CoreError,
    DependencyCycle,
    IllegalTransition,
    StaleInput,
    TemplateError,
    UnknownEntity,
)
from edge_runtime._engine import CoreConfig, CostFunction
from edge_runtime._machine import STEP_MACHINE, WORKFLOW_MACHINE, Machine, Transition
from edge_runtime._projection import Agent
from edge_runtime._template import (
    Compensation,
    RetryPolicy,
    Step,
    Template,
    load_template,
    load_templates,
)
from edge_runtime._views import (
    AgentView,
    StepView,
    WorkflowView,
    decode_workflow_record,
    encode_workflow_record,
)

__all__ = [
    "STEP_MACHINE",
    "WORKFLOW_MACHINE",
    "Agent",
    "AgentView",
    "BadArguments",
    "Compensation",
    "Core",
    "CoreConfig",
    "CoreError",
    "CostFunction",
    "DependencyCycle",
    "IllegalTransition",
    "Input",
    "Machine",
    "Restarted",
    "RetryPolicy",
    "StaleInput",
    "Step",
    "StepView",
    "Template",
    "TemplateError",
    "TimerFired",
    "Transition",
    "UnknownEntity",
    "WorkflowView",
    "decode_workflow_record",
    "encode_workflow_record",
    "load_template",
    "load_templates",
]
