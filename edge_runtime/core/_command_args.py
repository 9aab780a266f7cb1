"""The arguments of each hub command action (``HubCommand.args``), validated strictly."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_runtime.core._errors import CoreError
from edge_runtime.core._template import Protocol
from topics import HubCommand, Identifier

__all__ = [
    "BadArguments", "CheckpointArgs", "ConflictArgs", "CoordinationArgs", "CreateArgs",
    "DependencyArgs", "OperatorArgs",
    "WorkflowArgs", "parse_args",
]


class BadArguments(CoreError):
    """A hub command's ``args`` do not fit its action."""

    reason = "bad_args"


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class CreateArgs(_Args):
    """``create_workflow``: a new workflow from a template."""

    template: Identifier
    """``name`` (newest version) or ``name@version``."""
    workflow_id: Identifier
    priority: int = Field(default=0, ge=-1000, le=1000)
    deadline: float | None = Field(default=None, ge=0, le=1e11)
    data: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[Identifier] = Field(default_factory=list, max_length=64)
    coordination: Protocol | None = None
    """The allocation protocol (default: the template's)."""
    agents: list[Identifier] | None = Field(default=None, max_length=256)
    """Only these agents may take part in the workflow (default: any able agent)."""


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
    step: Identifier | None = None
    after: Identifier | None = None
    """Step-level: ``step`` of ``workflow_id`` starts only after its step ``after``."""


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
