"""Tunables of the workflow engine, and the allocation cost hook."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from edge_runtime.core._state import Agent, WorkflowRun
from edge_runtime.core._template import Step

__all__ = ["CoreConfig", "CostFunction"]

CostFunction = Callable[[Agent, Step, WorkflowRun], float]
"""Cost of giving a step to an agent (lower wins; ties go to the lower agent id)."""


@dataclass(frozen=True)
class CoreConfig:
    """Tunables of the workflow engine."""

    liveness_factor: float = 1.5
    """An agent is lost after ``liveness_s * liveness_factor`` without a state message."""
    dedup_window: int = 256
    """Event ids remembered per agent to drop redelivered agent events."""
    command_window: int = 4096
    """Hub command ids remembered to drop redelivered commands."""
    manual_intervention: bool = True
    """After retries are exhausted wait for an operator (else the workflow fails)."""
    max_checkpoints: int = 4
    """Recovery checkpoints kept per workflow (oldest dropped)."""
    battery_delta: float = 1.0
    """Battery changes smaller than this (percent) are not recorded as events."""
    cost: CostFunction | None = None
    """Allocation cost; ``None`` means 0 for every agent (the lowest id wins)."""
    stall_factor: float | None = None
    """A step still held this many times its ``estimated_duration_s`` after assignment is a
    ``step_stalled`` conflict (``_temporal``); ``None``: not checked."""
    exclusive_zones: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Node -> the exclusive zones it lies in (from the facility map): a person and a robot
    in one of them is a safety conflict (``_conflict``)."""
    archive_terminal: bool = True
    """Drop completed and cancelled workflows from memory once no pending workflow depends
    on them (event ``workflow_archived``, effect ``Archive`` with the final record)."""
