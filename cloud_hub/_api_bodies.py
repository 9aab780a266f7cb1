"""Request bodies of the REST API, validated strictly: a bad field is a 422 naming it and
nothing is sent to any edge. Limits mirror the edge's command arguments
(``edge_runtime.core``'s ``_command_args``) so the hub refuses what the edge would."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from topics import MAX_IDENTIFIER_LENGTH, ProtocolError, check_identifier

__all__ = [
    "ID_PATTERN", "LABEL_PATTERN", "BatchFilter", "BatchIn", "CheckpointIn", "ConflictResolveIn",
    "CoordinationIn", "DependencyIn", "DependencySpecIn", "Id", "RecoverIn", "StateSyncIn",
    "StopIn",
    "WorkflowCreateIn", "WorkflowUpdateIn", "WriteIn", "check_id",
]

ID_PATTERN = r'^[!"%-*,-.0-~]{1,' + str(MAX_IDENTIFIER_LENGTH) + "}$"
"""The edge's identifier rule (one MQTT topic level), as OpenAPI states it."""
LABEL_PATTERN = r"^[A-Za-z0-9_.-]{1,64}=[^\x00-\x1f=]{1,64}$"
"""A label filter, ``key=value`` (the edge's label key and value rules)."""
LabelKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
LabelValue = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f=]+$")]
Protocol = Literal["direct", "auction_based", "leader_follower", "consensus", "hierarchical"]


def check_id(value: str) -> str:
    """``value`` if it is an identifier (``ValueError`` with the edge's sentence if not)."""
    try:
        return check_identifier(value)
    except ProtocolError as exc:
        raise ValueError(exc.message) from None


Id = Annotated[str, Field(pattern=ID_PATTERN), AfterValidator(check_id)]
Reason = Annotated[str, Field(max_length=1024)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class WriteIn(_In):
    """What every write may carry: why (shown in the audit trail with who asked)."""

    reason: Reason = ""


DependencyType = Literal["sequential", "parallel", "conditional", "resource_based", "data_flow"]


class DependencySpecIn(_In):
    """A typed dependency of a new workflow on ``source`` (in any facility); ``conditions``
    as ``type`` needs them (``when``, ``resources``, ``outputs``: docs/workflows.md)."""

    source: Id
    type: DependencyType = "sequential"
    conditions: dict[str, Any] = Field(default_factory=dict)


class WorkflowCreateIn(WriteIn):
    """A new workflow from a template, in the facility named (``create_workflow``)."""

    facility: Id
    template: Id
    """``name`` (newest version) or ``name@version``."""
    workflow_id: Id | None = None
    """Default: one the hub makes up (``wf-`` and 12 hex digits)."""
    priority: int = Field(default=0, ge=-1000, le=1000)
    deadline: float | None = Field(default=None, ge=0, le=1e11)
    data: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[Id] = Field(default_factory=list, max_length=64)
    """Workflows (of any facility) it starts after: sequential dependencies."""
    dependencies: list[DependencySpecIn] = Field(default_factory=list, max_length=64)
    """Typed dependencies (of any facility): it is created held until they release it."""
    coordination: Protocol | None = None
    agents: list[Id] | None = Field(default=None, max_length=256)
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=32)
    """Tags to list it by (``GET /workflows?label=key=value``)."""


class WorkflowUpdateIn(WriteIn):
    """``update_workflow``: change what may change while a workflow lives; at least one."""

    priority: int | None = Field(default=None, ge=-1000, le=1000)
    deadline: float | None = Field(default=None, ge=0, le=1e11)
    clear_deadline: bool = False
    """Drop the deadline (an absent ``deadline`` means "unchanged")."""
    data: dict[str, Any] | None = None
    """Merged into the workflow's data (keys given replace theirs)."""
    labels: dict[LabelKey, LabelValue | None] | None = Field(default=None, max_length=32)
    """Labels to set (merged), or to remove (``null``)."""




class DependencyIn(WriteIn):
    """A dependency of this workflow (the target) on another (the source, its
    prerequisite), in the seed's shape; or, with ``step``/``after``, between two steps."""

    source: Id | None = None
    """The prerequisite workflow (in any facility): ``type`` says what it must do first."""
    type: DependencyType = "sequential"
    conditions: dict[str, Any] = Field(default_factory=dict)
    step: Id | None = None
    after: Id | None = None


class CoordinationIn(WriteIn):
    """``set_coordination``: the workflow's allocation protocol from now on."""

    protocol: Protocol
    agents: list[Id] | None = Field(default=None, max_length=256)


class CheckpointIn(WriteIn):
    """``checkpoint``: a recovery checkpoint of the workflow, under a label."""

    label: Id = "manual"


class RecoverIn(WriteIn):
    """``recover``: bring a failed (or stuck) workflow back by a strategy."""

    strategy: Literal["automatic_retry", "checkpoint_restore", "partial_rollback",
                      "manual_intervention"]
    action: Literal["retry", "skip", "reassign", "abort", "signal"] | None = None
    """``manual_intervention``: what the operator does (required there)."""
    step_id: Id | None = None
    checkpoint: Id | None = None
    """``checkpoint_restore``: which one (default: the newest)."""
    then: Literal["abort", "retry"] | None = None
    """``partial_rollback``: fail the workflow afterwards, or run the undone steps again
    (the edge's default: retry)."""
    signal: Id | None = None
    """``manual_intervention`` with ``signal``: the signal that ends waiting steps."""

    @model_validator(mode="after")
    def _fits_strategy(self) -> RecoverIn:
        allowed = _RECOVER_FIELDS[self.strategy]
        for name in ("action", "step_id", "checkpoint", "then", "signal"):
            if getattr(self, name) is not None and name not in allowed:
                raise ValueError(f"{self.strategy} does not take {name}")
        if self.strategy == "manual_intervention" and self.action is None:
            raise ValueError("manual_intervention needs the operator's action")
        if self.strategy == "partial_rollback" and self.step_id and self.checkpoint:
            raise ValueError("partial_rollback goes back to a step_id or a checkpoint, "
                             "not both")
        return self


_RECOVER_FIELDS = {
    "automatic_retry": ("step_id",), "checkpoint_restore": ("checkpoint",),
    "partial_rollback": ("step_id", "checkpoint", "then"),
    "manual_intervention": ("action", "step_id", "checkpoint", "then", "signal"),
}


class ConflictResolveIn(WriteIn):
    """``resolve_conflict``: an operator settles a conflict."""

    facility: Id | None = None
    """The conflict's facility (needed only when two facilities use the same id)."""
    resolution: Annotated[str, Field(max_length=512)] = "resolved by operator"
    choice: Literal["priority", "negotiation", "reallocation", "rescheduling"] | None = None


class StateSyncIn(WriteIn):
    """``POST /state/sync``: ask one facility's edge (or every edge) to replay what the hub
    lacks."""

    facility: Id | None = None


class StopIn(WriteIn):
    """A scoped safety stop: the whole facility, or one zone of its map."""

    zone: Id | None = None


class BatchFilter(_In):
    """Which workflows a batch action takes (at least one field)."""

    facility: Id | None = None
    state: Id | None = None
    template: Id | None = None
    agent: Id | None = None
    label: Annotated[str, Field(pattern=LABEL_PATTERN)] | None = None
    """``key=value``."""
    since: float | None = Field(default=None, ge=0, le=1e11)
    until: float | None = Field(default=None, ge=0, le=1e11)


class BatchIn(WriteIn):
    """``POST /workflows/batch``: pause, resume or cancel every workflow the filter takes;
    ``dry_run`` only counts them."""

    action: Literal["pause", "resume", "cancel"]
    filter: BatchFilter
    dry_run: bool = False
    limit: int = Field(default=1000, ge=1, le=10_000)
    """Most workflows one batch acts on (a safety bound)."""
