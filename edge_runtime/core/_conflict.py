"""Conflicts as first-class entities (docs/design.md §6), and the safety rules that raise them.

A ``Conflict`` is detected, stands (``open``, or ``escalated`` to an operator) and is
resolved — each an event (``conflict_detected``, ``conflict_joined``, ``conflict_escalated``,
``conflict_resolved``), so the hub lists them from ``edge/events`` and a replay rebuilds
them. This module has the safety rules; each is checked when what it reads changes:

- ``e_stop`` — an agent reports its emergency stop pressed (or a field violation made it
  stop); resolved when it reports it released.
- ``operating_mode`` — an agent holding a step leaves automatic mode; resolved when back.
- ``person_in_robot_zone`` — a person and a robot in one exclusive zone (the map's zones,
  ``CoreConfig.exclusive_zones``): every robot in the zone is told to pause *in the same
  batch*, and a robot entering the zone later too; when the zone no longer holds both, the
  robots the conflict paused are told to resume.
- ``command_refused`` — an agent refused, or did not honour, a cancel or a pause
  (``edge_runtime.core._confirm``): escalated to an operator at once.
- ``facility_stop`` — a supervisor's scoped safety stop (``_facility_stop``): the robots in
  scope paused until ``facility_release``.

Safety conflicts are never settled by priority: the condition rules resolve only when the
condition clears (``resolve_conflict`` refuses them while it holds); escalated ones are
resolved by an operator's ``resolve_conflict``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edge_runtime.core._command_args import ConflictArgs, parse_args
from edge_runtime.core._context import Context
from edge_runtime.core._errors import CoreError, UnknownEntity
from edge_runtime.core._state import Agent, Conflict
from topics import HubCommand, Pause, Resume

__all__ = ["CONDITION_RULES", "ConflictView", "Conflicts", "conflict_view"]

CONDITION_RULES = frozenset({"e_stop", "operating_mode", "person_in_robot_zone",
                             "battery_below_need"})
"""Rules whose conflict resolves by itself when its condition clears, and only then."""


class Conflicts:
    """Detects safety conflicts, stops the robots concerned, resolves and escalates."""

    def __init__(self, exclusive_zones: Mapping[str, tuple[str, ...]]) -> None:
        self.exclusive_zones = exclusive_zones
        """Node -> the exclusive zones it lies in (from the facility map)."""
        self.settlers: dict[str, Callable[[Context, Conflict, str], None]] = {}
        """Rule -> what an operator's ``resolve_conflict`` carries out before the conflict
        is resolved (it may refuse with a ``CoreError`` before changing anything)."""
        self.choosers: dict[str, Callable[[Context, Conflict, str, str], None]] = {}
        """Rule -> what carries out ``resolve_conflict``'s ``choice`` (a strategy) and
        resolves the conflict (``_strategies``); rules not here take no choice."""
        self.agent_hooks: list[Callable[[Context, Agent], None]] = []
        """Rules that also look at each agent ``check_agent`` looks at (``_facility_stop``:
        a robot entering a stopped zone)."""
        self.holders: list[Callable[[Context, Agent], Conflict | None]] = []
        """What may still hold a robot whose stopping conflict is resolved: it passes to
        that conflict (stays paused) instead of being resumed (``_facility_stop``)."""

    def actions(self) -> dict[str, Callable[[Context, HubCommand], dict[str, Any]]]:
        """The hub command actions this component serves."""
        return {"resolve_conflict": self.resolve_command}

    # --- rules ------------------------------------------------------------------------

    def check_agent(self, ctx: Context, agent: Agent, old_node: str | None) -> bool:
        """What ``agent``'s latest state (or loss) means: e-stop, mode and zone rules.
        True if a conflict was resolved (robots it stopped may take work again)."""
        open_ = ctx.state.open_conflicts
        before = list(open_)
        key = f"e_stop:{agent.id}"
        if agent.e_stop and agent.online and key not in open_:
            self.detect(ctx, key, "e_stop", [agent.id], None, "stop",
                         f"{agent.id} reports its emergency stop")
        elif key in open_ and not (agent.e_stop and agent.online):
            self.resolve(ctx, open_[key], "e-stop released" if agent.online else "agent lost")
        key = f"operating_mode:{agent.id}"
        off = agent.online and agent.mode != "automatic" and agent.task is not None
        if off and key not in open_:
            self.detect(ctx, key, "operating_mode", [agent.id], None, "stop",
                         f"{agent.id} holds a step in {agent.mode} mode")
        elif key in open_ and not off:
            self.resolve(ctx, open_[key], "back in automatic mode" if agent.online
                         else "agent lost")
        zones_of = self.exclusive_zones
        if zones_of:  # a facility without exclusive zones has no zone rule to check
            zones = set(zones_of.get(agent.node or "", ()))
            zones.update(zones_of.get(old_node or "", ()))
            for zone in sorted(zones):
                self._check_zone(ctx, zone)
        for hook in self.agent_hooks:
            hook(ctx, agent)
        return any(key not in open_ for key in before)

    def _check_zone(self, ctx: Context, zone: str) -> None:
        people: list[str] = []
        robots: list[str] = []
        for a in ctx.state.agents.values():
            if a.online and zone in self.exclusive_zones.get(a.node or "", ()):
                if a.kind == "human":
                    people.append(a.id)
                elif a.kind == "robot":
                    robots.append(a.id)
        key = f"person_in_robot_zone:{zone}"
        conflict = ctx.state.open_conflicts.get(key)
        if people and robots:
            if conflict is None:
                conflict = self.detect(
                    ctx, key, "person_in_robot_zone", sorted(people + robots), zone, "stop",
                    f"{', '.join(people)} and {', '.join(robots)} in exclusive zone {zone}")
            for robot in robots:
                if ctx.state.agents[robot].stopped_by != conflict.id:
                    if robot not in conflict.participants:
                        ctx.emit("conflict_joined", None, {"id": conflict.id, "agent": robot})
                    self._stop(ctx, conflict, robot)
        elif conflict is not None:
            self.resolve(ctx, conflict, f"zone {zone} holds no person and robot together")

    def refused(self, ctx: Context, agent_id: str, workflow_id: str, detail: str) -> None:
        """An agent refused or ignored a stop or a pause: an operator must look."""
        conflict = self.detect(ctx, f"command_refused:{ctx.state.seq + 1}", "command_refused",
                                [agent_id], None, "operator", detail, workflow_id)
        ctx.emit("conflict_escalated", None, {"id": conflict.id, "reason": detail})

    # --- lifecycle --------------------------------------------------------------------

    def detect(self, ctx: Context, key: str, rule: str, participants: list[str],
               resource: str | None, strategy: str, detail: str,
               workflow_id: str | None = None, type_: str = "safety",
               claims: list[list[str]] | None = None) -> Conflict:
        """Record a new conflict (one open per ``key``); ``claims``: the contending
        ``[workflow, step]`` claims of a contention conflict, the holder's first."""
        conflict_id = f"k{ctx.state.seq + 1}"
        data: dict[str, Any] = {
            "id": conflict_id, "key": key, "type": type_, "rule": rule,
            "participants": participants, "resource": resource, "strategy": strategy,
            "detail": detail[:512], "at": ctx.now,
        }
        if claims:
            data["claims"] = claims
        ctx.emit("conflict_detected", workflow_id, data)
        return ctx.state.conflicts[conflict_id]

    def stop_agent(self, ctx: Context, conflict: Conflict, robot: str) -> None:
        """Pause ``robot`` for ``conflict`` (``_facility_stop``)."""
        self._stop(ctx, conflict, robot)

    def _stop(self, ctx: Context, conflict: Conflict, robot: str) -> None:
        """Pause ``robot`` for ``conflict`` (an agent-wide pause: whatever it is doing)."""
        cmd = f"s{ctx.state.seq + 1}-{robot}"[:64]
        ctx.emit("agent_stopped", None, {"agent": robot, "conflict": conflict.id, "cmd": cmd})
        ctx.send(robot, Pause.model_construct(command_id=cmd, ts=ctx.now, workflow_id=None,
                                              step_id=None))

    def resolve(self, ctx: Context, conflict: Conflict, resolution: str) -> None:
        """End ``conflict``; the robots it stopped are told to go on."""
        stopped = [a.id for a in ctx.state.agents.values() if a.stopped_by == conflict.id]
        ctx.emit("conflict_resolved", None, {"id": conflict.id, "resolution": resolution[:512],
                                             "at": ctx.now})
        for robot in stopped:
            held = next((h for f in self.holders
                         if (h := f(ctx, ctx.state.agents[robot])) is not None), None)
            if held is not None:  # another conflict still holds it: it stays paused
                ctx.emit("agent_stopped", None, {"agent": robot, "conflict": held.id,
                                                 "cmd": ""})
                continue
            ctx.send(robot, Resume.model_construct(
                command_id=f"u{ctx.state.seq}-{robot}"[:64], ts=ctx.now, workflow_id=None,
                step_id=None))

    def resolve_command(self, ctx: Context, cmd: HubCommand) -> dict[str, Any]:
        """``resolve_conflict``: an operator settles an open or escalated conflict."""
        a: ConflictArgs = parse_args(ConflictArgs, cmd)
        conflict = ctx.state.conflicts.get(a.conflict_id)
        if conflict is None:
            raise UnknownEntity(f"no conflict {a.conflict_id!r}")
        if conflict.status == "resolved":
            raise CoreError(f"conflict {conflict.id} is already resolved")
        if conflict.rule in CONDITION_RULES:
            raise CoreError(f"conflict {conflict.id} ({conflict.rule}) resolves only when its "
                            "condition clears: safety is not settled by hand")
        if a.choice is not None:
            choose = self.choosers.get(conflict.rule)
            if choose is None:
                raise CoreError(f"conflict {conflict.id} ({conflict.rule}) takes no choice of "
                                "strategy: only contention conflicts do")
            choose(ctx, conflict, a.choice, a.resolution)
            return {"conflict_id": conflict.id, "status": conflict.status}
        settle = self.settlers.get(conflict.rule)
        if settle is not None:
            settle(ctx, conflict, a.resolution)
        self.resolve(ctx, conflict, f"operator: {a.resolution}")
        return {"conflict_id": conflict.id, "status": conflict.status}


@dataclass(frozen=True, slots=True)
class ConflictView:
    """One conflict, as it stands (``Core.conflicts``)."""

    id: str
    type: str
    rule: str
    participants: tuple[str, ...]
    resource: str | None
    strategy: str
    detail: str
    detected_at: float
    status: str
    resolution: str
    resolved_at: float | None
    workflow_id: str | None
    claims: tuple[tuple[str, str], ...] = ()
    """Contention conflicts: the contending (workflow, step) claims, the holder's first."""


def conflict_view(c: Conflict) -> ConflictView:
    """The read-only view of ``c``."""
    return ConflictView(c.id, c.type, c.rule, tuple(c.participants), c.resource, c.strategy,
                        c.detail, c.detected_at, c.status, c.resolution, c.resolved_at,
                        c.workflow_id, tuple((w, s) for w, s in c.claims))
