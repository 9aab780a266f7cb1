"""Who takes part, as plain data: ``Agent`` (what the edge knows of one agent) and
``Conflict`` (a detected conflict and how it stands) — parts of ``FacilityState``
(``edge_runtime.core._state``), changed only by the projection."""

from __future__ import annotations

from collections import deque

__all__ = ["Agent", "Conflict"]


class Agent:
    """What the edge knows of one agent."""

    __slots__ = (
        "battery",
        "bids",
        "caps",
        "e_stop",
        "id",
        "kind",
        "lent_to",
        "liveness",
        "mode",
        "node",
        "online",
        "queued",
        "recent",
        "recent_ids",
        "status",
        "stopped_by",
        "sub_task",
        "task",
    )

    def __init__(self, agent_id: str, kind: str, caps: tuple[str, ...], liveness: float) -> None:
        self.id = agent_id
        self.kind = kind
        self.caps: frozenset[str] = frozenset(caps)
        self.liveness = liveness
        """Seconds within which a state message must come, or the agent is lost."""
        self.online = True
        self.status = "idle"
        self.node: str | None = None
        self.battery: float | None = None
        self.mode = "automatic"
        self.e_stop = False
        self.task: tuple[str, str] | None = None
        """``(workflow_id, step_id)`` the agent is assigned to, if any."""
        self.recent: deque[str] = deque()
        """Last event ids from this agent, oldest first (duplicate filter window)."""
        self.recent_ids: dict[str, None] = {}
        self.stopped_by: str | None = None
        """The safety conflict that paused this agent, until it is resolved."""
        self.queued: list[tuple[str, str]] = []
        """Work queued on it while it is busy, first to start first: ``(workflow_id,
        step_id)`` (``CoreConfig.max_queued_per_agent``, ``_workqueues``)."""
        self.sub_task: tuple[str, str, str] | None = None
        """``(workflow_id, step_id, sub_id)``: a team lead gave it this part of a composite
        step (``_hierarchy``); it takes no other work meanwhile."""
        self.bids = True
        """It answers calls for proposals itself; else the edge bids for it (``_auction``:
        VDA 5050 AGVs, simple devices; ``AgentConn.bids``)."""
        self.lent_to: str | None = None
        """The facility this agent is lent to (``_lending``): it takes no new work here
        until reclaimed."""

    @property
    def available(self) -> bool:
        """Online, unassigned, able, in automatic mode, not stopped for safety and not lent
        to another facility."""
        return (
            self.online and self.task is None and not self.e_stop and self.mode == "automatic"
            and self.status in ("idle", "busy") and self.stopped_by is None
            and self.sub_task is None and self.lent_to is None
        )


class Conflict:
    """A conflict (docs/design.md §6): what was detected, who it concerns, how it stands."""

    __slots__ = (
        "claims",
        "detail",
        "detected_at",
        "id",
        "key",
        "participants",
        "resolution",
        "resolved_at",
        "resource",
        "rule",
        "status",
        "strategy",
        "type",
        "workflow_id",
    )

    def __init__(self, conflict_id: str, key: str, type_: str, rule: str,
                 participants: list[str], resource: str | None, strategy: str, detail: str,
                 detected_at: float, workflow_id: str | None) -> None:
        self.id = conflict_id
        self.key = key
        """What makes it the same conflict (``person_in_robot_zone:cold_room``): one open
        conflict per key."""
        self.type = type_
        """``safety`` (later: ``resource``, ``temporal``, ``data``)."""
        self.rule = rule
        """The detection rule (``e_stop``, ``person_in_robot_zone`` …)."""
        self.participants = participants
        """Agents concerned, in order."""
        self.resource = resource
        """The zone or resource, if any."""
        self.strategy = strategy
        """``stop`` (robots paused until it clears) or ``operator``."""
        self.detail = detail
        self.detected_at = detected_at
        self.workflow_id = workflow_id
        self.status = "open"
        """``open``, ``escalated`` (an operator must act) or ``resolved``."""
        self.resolution = ""
        self.resolved_at: float | None = None
        self.claims: list[list[str]] = []
        """Contention conflicts: the contending ``[workflow, step]`` claims, the holder's
        first (``_contention``)."""
