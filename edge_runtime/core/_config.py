"""Tunables of the workflow engine, and the allocation cost hook."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

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
    conflict_strategies: Mapping[str, str] = field(default_factory=dict)
    """Rule or conflict type -> strategy for the contention rules (``_strategies``):
    ``priority``, ``negotiation``, ``reallocation``, ``rescheduling`` or ``operator``; a
    template's ``conflict_strategies`` override it (``_strategies_config``)."""
    team_patience: int = 3
    """A coalition step passed over this many times (it could not be formed while an agent
    it could use was free) is served first from then on (``_coalition_fair``)."""
    battery_per_meter: float = 0.0
    """Battery (percent) a robot spends per unit of path cost (``cost``: metres on a map) on
    its way to a step (``_battery``: the ``battery_below_need`` rule; off while all three
    battery figures are 0)."""
    battery_per_action: float = 0.0
    """Battery (percent) a step with an ``action`` needs to carry it out."""
    battery_reserve: float = 0.0
    """Battery (percent) a robot must still have when the step is done."""
    concurrent_write: Literal["operator", "last_writer_wins", "first_writer_wins"] = "operator"
    """What a ``concurrent_write`` conflict does with the later write (``_consistency``):
    hold it for an operator, or apply it / drop it at once (the conflict is still recorded)."""
    stale_command_s: float | None = None
    """A hub command on a workflow whose ``ts`` is older than the workflow's last change by
    more than this is refused as a ``stale_command`` (``None``: ``ts`` is not compared)."""
    resource_order: bool | tuple[str, ...] = True
    """Deadlock prevention (``_resources``): resources are acquired in a global order — their
    names sorted (``True``), or this facility order (names not listed come after, sorted) —
    and a step starting a span claims the lower resources its span will need at once;
    ``False``: no ordering (the wait-for graph still catches cycles, ``_deadlock``)."""
    bid_window_s: float = 5.0
    """``auction_based`` (``_auction``): seconds a call for proposals takes bids."""
    award_timeout_s: float = 10.0
    """Seconds an auction's winner has to accept or start the step before the award goes
    to the next best bid."""
    auction_backoff_s: float = 5.0
    """A round without a usable bid is called again after this, doubled each round."""
    auction_rounds: int = 3
    """Rounds without a usable bid after which the step waits for an operator (a
    ``no_bids`` conflict)."""
    max_queued_per_agent: int = 0
    """Work queues (``_workqueues``): a ready step that finds no free agent may be queued on
    a busy one that has fewer than this many queued (0: no queued work, steps wait in the
    facility queue); it starts as soon as that agent's work before it ends."""
    prefer_idle: bool = True
    """With work queues: a free agent before a busy one whatever the cost (``False``: the
    lowest ETA wins, a busy agent's ETA being its remaining work plus the cost)."""
    batch_window_s: float = 0.0
    """Batch allocation window: ready steps wait until the next multiple of this many
    seconds and are then assigned together, cost-optimally (``_batch``); 0: each ready step
    is assigned at once (steps already waiting are still batched when agents free up)."""
