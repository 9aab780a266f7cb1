"""The arguments of the hub actions the cloud hub's API needs (``_hub_actions``,
``_facility_stop``), validated strictly like those of ``_command_args``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from edge_runtime.core._command_args import LabelKey, LabelValue, _Args
from topics import Identifier

__all__ = [
    "CheckpointListArgs", "FacilityReleaseArgs", "FacilityStopArgs", "RecoverArgs",
    "SyncReportArgs", "UpdateArgs",
]

OperatorAction = Literal["retry", "skip", "reassign", "abort", "restore", "rollback", "signal"]


class UpdateArgs(_Args):
    """``update_workflow``: a live workflow's priority, deadline and data (merged)."""

    workflow_id: Identifier
    expected_seq: int | None = Field(default=None, ge=0)
    """Seq of the workflow's last event the sender saw; later events: refused as stale."""
    priority: int | None = Field(default=None, ge=-1000, le=1000)
    deadline: float | None = Field(default=None, ge=0, le=1e11)
    clear_deadline: bool = False
    """Drop the deadline (``deadline`` absent means "unchanged", so this says "none")."""
    data: dict[str, Any] | None = None
    """Variables to set (merged into the workflow's data; others keep their values)."""
    labels: dict[LabelKey, LabelValue | None] | None = Field(default=None, max_length=32)
    """Labels to set (merged), or to remove (``None``)."""

    @model_validator(mode="after")
    def _something(self) -> UpdateArgs:
        if self.priority is None and self.deadline is None and not self.clear_deadline \
                and not self.data and not self.labels:
            raise ValueError("nothing to update: give priority, deadline, clear_deadline, "
                             "data or labels")
        if self.clear_deadline and self.deadline is not None:
            raise ValueError("deadline and clear_deadline contradict each other")
        return self


class RecoverArgs(_Args):
    """``recover``: a recovery strategy, mapped onto the operator actions (``_operator``)."""

    workflow_id: Identifier
    expected_seq: int | None = Field(default=None, ge=0)
    """Seq of the workflow's last event the sender saw; later events: refused as stale."""
    strategy: Literal["automatic_retry", "checkpoint_restore", "partial_rollback",
                      "manual_intervention"]
    step_id: Identifier | None = None
    checkpoint_id: Identifier | None = None
    action: OperatorAction | None = None
    """``manual_intervention`` only: the operator action."""
    then: Literal["abort", "retry"] = "retry"
    """``partial_rollback``: run the undone steps again (default) or fail the workflow."""
    signal: Identifier | None = None
    """``manual_intervention`` with action ``signal``."""


class CheckpointListArgs(_Args):
    """``list_checkpoints``: of one workflow in memory."""

    workflow_id: Identifier


class SyncReportArgs(_Args):
    """``sync_arrival``: the hub reports a participant's arrival at a sync point (a
    supervisor on behalf of a person without a device)."""

    workflow_id: Identifier
    expected_seq: int | None = Field(default=None, ge=0)
    """Seq of the workflow's last event the sender saw; later events: refused as stale."""
    step_id: Identifier
    """The sync step (the barrier)."""
    agent_id: Identifier
    reported_by: str = Field(default="hub", min_length=1, max_length=128)
    """Who reported it (the hub puts its caller's identity here)."""


class FacilityStopArgs(_Args):
    """``facility_stop``: pause every robot in scope and hold allocation there."""

    zone: Identifier | None = None
    """An exclusive zone of the map; ``None``: the whole facility."""
    reason: str = Field(min_length=1, max_length=512)


class FacilityReleaseArgs(_Args):
    """``facility_release``: end the stop of ``zone`` (``None``: the facility-wide one)."""

    zone: Identifier | None = None
    resolution: str = Field(default="released", max_length=512)
