"""The scoped safety stop (hub actions ``facility_stop`` and ``facility_release``).

A stop is a safety conflict of rule ``facility_stop`` (strategy ``stop``), keyed by its
scope: ``facility_stop:*`` for the whole facility, ``facility_stop:<zone>`` for one
exclusive zone of the map (``CoreConfig.exclusive_zones``). It reuses the agent-wide pause
of the zone rule (``Conflicts._stop``: ``agent_stopped`` + ``Pause``), so:

- every robot in scope is paused in the same batch as the command;
- allocation is held in scope: a stopped robot is not ``Agent.available`` and takes no step
  (nor queued work); a robot that enters the zone, or joins, while the stop holds is paused
  too (``Conflicts.agent_hooks``);
- only ``facility_release`` ends it (never priority, never ``resolve_conflict``); its robots
  are resumed then — except those another stop still covers, or a person still shares an
  exclusive zone with: they pass to that conflict and stay paused (``Conflicts.holders``).

People and AI agents are not paused or held: the stop is about machines; the people in the
zone are what it protects (docs/coordination.md, "Facility and zone stop").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from edge_runtime.core._allocation import Allocation
from edge_runtime.core._command_args import BadArguments, parse_args
from edge_runtime.core._conflict import Conflicts
from edge_runtime.core._context import Context
from edge_runtime.core._errors import CoreError
from edge_runtime.core._hub_action_args import FacilityReleaseArgs, FacilityStopArgs
from edge_runtime.core._state import Agent, Conflict, FacilityState
from topics import HubCommand

__all__ = ["RULE", "FacilityStops"]

RULE = "facility_stop"
_WHOLE = "*"


class FacilityStops:
    """Stops the robots in a scope, keeps them stopped, releases them."""

    def __init__(self, conflicts: Conflicts, allocation: Allocation) -> None:
        self.conflicts = conflicts
        self.allocation = allocation
        self.zones: Mapping[str, tuple[str, ...]] = conflicts.exclusive_zones
        conflicts.settlers[RULE] = self._not_by_hand
        conflicts.agent_hooks.append(self.check_agent)
        conflicts.holders.append(self.holder)

    def actions(self) -> dict[str, Callable[[Context, HubCommand], dict[str, Any]]]:
        """The hub command actions this component serves."""
        return {"facility_stop": self.stop, "facility_release": self.release}

    def _in_scope(self, agent: Agent, scope: str) -> bool:
        return agent.kind == "robot" and agent.online and (
            scope == _WHOLE or scope in self.zones.get(agent.node or "", ()))

    def _scope(self, zone: str | None) -> str:
        if zone is None:
            return _WHOLE
        if not any(zone in zs for zs in self.zones.values()):
            known = sorted({z for zs in self.zones.values() for z in zs})
            raise BadArguments(f"no exclusive zone {zone!r} in this facility's map; known: "
                               f"{', '.join(known) or 'none'}")
        return zone

    def stop(self, ctx: Context, cmd: HubCommand) -> dict[str, Any]:
        """``facility_stop``: pause every robot in scope now and hold allocation there."""
        a: FacilityStopArgs = parse_args(FacilityStopArgs, cmd)
        scope = self._scope(a.zone)
        key = f"{RULE}:{scope}"
        if key in ctx.state.open_conflicts:
            raise CoreError(f"{'the facility' if a.zone is None else 'zone ' + scope} is "
                            f"already stopped ({ctx.state.open_conflicts[key].id})")
        robots = sorted(x.id for x in ctx.state.agents.values() if self._in_scope(x, scope))
        where = "the whole facility" if a.zone is None else f"zone {scope}"
        conflict = self.conflicts.detect(ctx, key, RULE, robots, a.zone, "stop",
                                         f"stop of {where}: {a.reason}")
        for robot in robots:
            self.conflicts.stop_agent(ctx, conflict, robot)
        return {"conflict_id": conflict.id, "zone": a.zone, "stopped": robots}

    def release(self, ctx: Context, cmd: HubCommand) -> dict[str, Any]:
        """``facility_release``: end the stop of the scope; its robots resume (unless still
        held by another stop or a person in their zone) and allocation goes on."""
        a: FacilityReleaseArgs = parse_args(FacilityReleaseArgs, cmd)
        scope = self._scope(a.zone)
        conflict = ctx.state.open_conflicts.get(f"{RULE}:{scope}")
        if conflict is None:
            raise CoreError(f"{'the facility' if a.zone is None else 'zone ' + scope} is not "
                            "stopped")
        stopped = sorted(x.id for x in ctx.state.agents.values() if x.stopped_by == conflict.id)
        self.conflicts.resolve(ctx, conflict, f"released: {a.resolution}")
        resumed = [r for r in stopped if ctx.state.agents[r].stopped_by is None]
        self.allocation.allocate_waiting(ctx)
        return {"conflict_id": conflict.id, "zone": a.zone, "resumed": resumed}

    def check_agent(self, ctx: Context, agent: Agent) -> None:
        """A robot that joins or moves into a stopped scope is paused too."""
        if agent.kind != "robot" or not agent.online or agent.stopped_by is not None:
            return
        conflict = self._covering(ctx.state, agent)
        if conflict is not None:
            if agent.id not in conflict.participants:
                ctx.emit("conflict_joined", None, {"id": conflict.id, "agent": agent.id})
            self.conflicts.stop_agent(ctx, conflict, agent.id)

    def holder(self, ctx: Context, agent: Agent) -> Conflict | None:
        """The open stop (or person-in-zone conflict) that still holds ``agent`` once the
        conflict that paused it is resolved."""
        found = self._covering(ctx.state, agent)
        if found is not None or agent.kind != "robot":
            return found
        for zone in self.zones.get(agent.node or "", ()):
            person = ctx.state.open_conflicts.get(f"person_in_robot_zone:{zone}")
            if person is not None:
                return person
        return None

    def _covering(self, state: FacilityState, agent: Agent) -> Conflict | None:
        if not state.open_conflicts:
            return None
        for scope in (_WHOLE, *self.zones.get(agent.node or "", ())):
            conflict = state.open_conflicts.get(f"{RULE}:{scope}")
            if conflict is not None and self._in_scope(agent, scope):
                return conflict
        return None

    @staticmethod
    def _not_by_hand(ctx: Context, conflict: Conflict, resolution: str) -> None:
        raise CoreError(f"conflict {conflict.id} ({RULE}) is a safety stop: it ends only by "
                        "facility_release, never by resolve_conflict")
