"""The arguments of each hub command action (``HubCommand.args``), validated strictly."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_runtime.core._errors import CoreError
from edge_runtime.core._template import Protocol
from topics import HubCommand, Identifier

__all__ = [
    "BadArguments", "CheckpointArgs", "ConflictArgs", "CoordinationArgs", "CreateArgs",
    "DependencyArgs", "DependencySpec", "OperatorArgs", "ResolveDependencyArgs",
    "WorkflowArgs", "parse_args",
]


class BadArguments(CoreError):
    """A hub command's ``args`` do not fit its action."""

    reason = "bad_args"


LabelKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
"""A label's key: letters, digits, ``_ . -``; 1 to 64 of them."""
LabelValue = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f=]+$")]
"""A label's value: 1 to 64 printable characters, no ``=`` (``key=value`` filters)."""


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


DependencyType = Literal["sequential", "parallel", "conditional", "resource_based",
                         "data_flow"]
"""The five types of a dependency between workflows (``_dependency_rules``)."""


class DependencySpec(_Args):
    """One typed dependency of a workflow being created (``create_workflow.dependencies``);
    ``facility`` another than the edge's: an external one, resolved by the hub."""

    depends_on: Identifier
    type: DependencyType = "sequential"
    conditions: dict[str, Any] = Field(default_factory=dict)
    facility: Identifier | None = None


class CreateArgs(_Args):
    """``create_workflow``: a new workflow from a template."""

    template: Identifier
    """``name`` (newest version) or ``name@version``."""
    workflow_id: Identifier
    priority: int = Field(default=0, ge=-1000, le=1000)
    deadline: float | None = Field(default=None, ge=0, le=1e11)
    data: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[Identifier] = Field(default_factory=list, max_length=64)
    dependencies: list[DependencySpec] = Field(default_factory=list, max_length=64)
    """Typed (and external) dependencies, next to the plain sequential ``depends_on``."""
    coordination: Protocol | None = None
    """The allocation protocol (default: the template's)."""
    agents: list[Identifier] | None = Field(default=None, max_length=256)
    """Only these agents may take part in the workflow (default: any able agent)."""
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=32)
    """What the operator tags it with (``team: north``): lists filter by them."""


class CoordinationArgs(_Args):
    """``set_coordination``: change a live workflow's protocol and, optionally, the set of
    agents allowed to take part (steps already assigned keep their agents)."""

    workflow_id: Identifier
    expected_seq: int | None = Field(default=None, ge=0)
    """Seq of the workflow's last event the sender saw; later events: refused as stale."""
    protocol: Protocol
    agents: list[Identifier] | None = Field(default=None, max_length=256)
    """``None``: any able agent."""


class WorkflowArgs(_Args):
    """``cancel_workflow``, ``pause_workflow``, ``resume_workflow``."""

    workflow_id: Identifier
    expected_seq: int | None = Field(default=None, ge=0)
    """Seq of the workflow's last event the sender saw; later events: refused as stale."""
    reason: str = Field(default="", max_length=1024)


class DependencyArgs(_Args):
    """``add_dependency``: between workflows, or between two steps of one."""

    workflow_id: Identifier
    expected_seq: int | None = Field(default=None, ge=0)
    """Seq of the workflow's last event the sender saw; later events: refused as stale."""
    depends_on: Identifier | None = None
    """Workflow-level: ``workflow_id`` starts only after ``depends_on`` completed."""
    type: DependencyType = "sequential"
    conditions: dict[str, Any] = Field(default_factory=dict)
    facility: Identifier | None = None
    """Workflow-level, typed: the source's facility if not this edge's (external)."""
    step: Identifier | None = None
    after: Identifier | None = None
    """Step-level: ``step`` of ``workflow_id`` starts only after its step ``after``."""


class ResolveDependencyArgs(_Args):
    """``resolve_dependency``: the hub's verdict on an external dependency."""

    workflow_id: Identifier
    depends_on: Identifier
    facility: Identifier
    verdict: Literal["release", "fail", "skip"]
    data: dict[str, Any] = Field(default_factory=dict)
    """``release`` of a ``data_flow`` dependency: merged into the target's data."""
    reason: str = Field(default="", max_length=1024)


class CheckpointArgs(_Args):
    """``checkpoint``: of one workflow, or (no id) of the whole facility."""

    workflow_id: Identifier | None = None
    expected_seq: int | None = Field(default=None, ge=0)
    """Seq of the workflow's last event the sender saw; later events: refused as stale."""
    label: Identifier = "manual"


class OperatorArgs(_Args):
    """``operator_action``: manual intervention on a workflow or one of its steps."""

    workflow_id: Identifier
    expected_seq: int | None = Field(default=None, ge=0)
    """Seq of the workflow's last event the sender saw; later events: refused as stale."""
    action: Literal["retry", "skip", "reassign", "abort", "restore", "rollback", "signal"]
    step_id: Identifier | None = None
    checkpoint: Identifier | None = None
    """``restore``: the checkpoint id (default: the newest)."""
    then: Literal["abort", "retry"] = "abort"
    """``rollback``: fail the workflow afterwards, or run the undone steps again."""
    signal: Identifier | None = None
    """``signal``: ends wait steps waiting for this signal."""


class ConflictArgs(_Args):
    """``resolve_conflict``: an operator settles a conflict."""

    conflict_id: Identifier
    resolution: str = Field(default="resolved by operator", max_length=512)
    choice: Literal["priority", "negotiation", "reallocation", "rescheduling"] | None = None
    """A contention conflict only: settle it by this strategy now (``_strategies``)
    rather than leave the waiting claim waiting."""


def parse_args(model: type[_Args], cmd: HubCommand) -> Any:
    """``cmd.args`` as ``model``; ``BadArguments`` naming the first bad field."""
    try:
        return model.model_validate(cmd.args)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "args"
        raise BadArguments(f"{cmd.action} args.{where}: {err['msg']}") from None
