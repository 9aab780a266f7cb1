"""The ``battery_below_need`` safety rule (docs/design.md §6): an agent's battery below what a step
needs — the travel to it and its action.

A step's need for an agent is ``cost(agent, step) * battery_per_meter`` (the configured
path cost: metres on a map) ``+ battery_per_action`` (if the step has an ``action``)
``+ battery_reserve`` (``CoreConfig``; the rule is off while all three are 0). An agent
that reports no battery (a person, an AI agent) always fits.

- Allocation never gives a step to an agent below its need (``Allocation.pick`` asks
  ``fits``). If every online agent able to take the step is below it, the step waits and a
  conflict is raised (strategy ``reallocation``: the step goes to the first agent that fits —
  a charged one or a newcomer); resolved when one fits again, or the step leaves the queue.
- An agent holding a step whose battery falls below the remaining need (from where it
  stands now) raises one too, escalated to an operator (strategy ``operator``). The robot
  is *not* paused: stopping it mid-aisle for a low battery blocks the aisle and does not
  charge it; its own battery management acts on critical levels (docs/decisions.md).
  Resolved when the battery recovers or the agent no longer holds the step.

Safety conflicts are never settled by priority, and these resolve only by their condition
(``resolve_conflict`` refuses them meanwhile: ``CONDITION_RULES``).
"""

from __future__ import annotations

from edge_runtime.core._allocation import Allocation
from edge_runtime.core._config import CoreConfig
from edge_runtime.core._conflict import Conflicts
from edge_runtime.core._context import Context
from edge_runtime.core._effects import Append
from edge_runtime.core._state import Agent, StepRun, WorkflowRun

__all__ = ["BatteryRules", "battery_rules"]

_RULE = "battery_below_need"
_UNREACHABLE = 1e9
"""The shell's map cost of a step out of an agent's reach: allocation's business (the agent
wins only if nobody can get there), not a battery need."""
_HELD = ("assigned", "preparing", "executing", "validating", "cleanup", "cancelling")


def battery_rules(config: CoreConfig, conflicts: Conflicts,
                  allocation: Allocation) -> BatteryRules | None:
    """The rule if the configuration turns it on (any battery figure above 0), else
    ``None``: allocation then pays nothing for it."""
    if not (config.battery_per_meter or config.battery_per_action or config.battery_reserve):
        return None
    return BatteryRules(config, conflicts, allocation)


class BatteryRules:
    """Decides whether an agent's battery covers a step, and raises/resolves the conflict."""

    def __init__(self, config: CoreConfig, conflicts: Conflicts,
                 allocation: Allocation) -> None:
        self.cost = config.cost
        self.per_meter = config.battery_per_meter
        self.per_action = config.battery_per_action
        self.reserve = config.battery_reserve
        self.conflicts = conflicts
        self.allocation = allocation

    def need(self, agent: Agent, wf: WorkflowRun, st: StepRun) -> float:
        """Battery (percent) ``agent`` needs to get to ``st`` from where it stands and do it."""
        travel = 0.0 if self.cost is None else self.cost(agent, st.spec, wf)
        if travel >= _UNREACHABLE:
            travel = 0.0
        action = self.per_action if st.spec.action else 0.0
        return travel * self.per_meter + action + self.reserve

    def fits(self, agent: Agent, wf: WorkflowRun, st: StepRun) -> bool:
        """Whether ``agent``'s battery covers ``st`` (unknown battery: yes)."""
        return agent.battery is None or agent.battery >= self.need(agent, wf, st)

    # --- waiting steps ----------------------------------------------------------------

    def starved(self, ctx: Context, wf: WorkflowRun, st: StepRun) -> None:
        """Allocation skipped agents below ``st``'s need and found nobody: a conflict if
        every online agent able to take ``st`` is below it."""
        key = f"{_RULE}:{wf.id}/{st.id}"
        if key in ctx.state.open_conflicts:
            return
        able = self._able(ctx, wf, st)
        low = [a for a in able if not self.fits(a, wf, st)]
        if not able or len(low) < len(able):
            return  # someone able fits: the step waits for it as for any busy agent
        shown = ", ".join(f"{a.id} {a.battery:.0f}% < {self.need(a, wf, st):.0f}%"
                          for a in low[:8])
        self.conflicts.detect(ctx, key, _RULE, sorted(a.id for a in low), None, "reallocation",
                              f"{wf.id}.{st.id}: every able agent is below its need ({shown})",
                              wf.id, "safety")

    def _able(self, ctx: Context, wf: WorkflowRun, st: StepRun) -> list[Agent]:
        """Online agents that could take ``st`` but for their battery or being busy."""
        spec = st.spec
        caps, policy, members = spec.capabilities, spec.agents, wf.allowed_agents
        return [
            a for a in ctx.state.agents.values()
            if a.online and a.kind == spec.kind and a.id != st.avoid
            and (not caps or a.caps.issuperset(caps))
            and (not policy.allowed or a.id in policy.allowed) and a.id not in policy.forbidden
            and (members is None or a.id in members)
        ]

    # --- after every input ------------------------------------------------------------

    def review(self, ctx: Context) -> None:
        """Agents whose state changed in this input: a holder now below its remaining need
        raises the conflict; open ones whose cause is gone resolve (a recovered battery
        first gets its chance at the waiting steps)."""
        state = ctx.state
        updated = [e.event.data["agent"] for e in ctx.effects if isinstance(e, Append)
                   and e.event.kind == "agent_updated"]
        for aid in dict.fromkeys(updated):
            agent = state.agents[aid]
            wf = state.workflows.get(agent.task[0]) if agent.task is not None else None
            st = wf.steps.get(agent.task[1]) if wf is not None and agent.task else None
            if wf is not None and st is not None and agent.battery is not None:
                self._check_holder(ctx, wf, st, agent)
        mine = [c for c in state.open_conflicts.values() if c.rule == _RULE]
        if not mine:
            return
        if updated and any("@" not in c.key for c in mine):
            self.allocation.allocate_waiting(ctx)  # a charged agent may take a waiting step
        for conflict in mine:
            self._review(ctx, conflict.key)

    def _check_holder(self, ctx: Context, wf: WorkflowRun, st: StepRun, agent: Agent) -> None:
        key = f"{_RULE}:{wf.id}/{st.id}@{agent.id}"
        if st.agent != agent.id or st.state not in _HELD or key in ctx.state.open_conflicts:
            return
        need = self.need(agent, wf, st)
        assert agent.battery is not None
        if agent.battery >= need:
            return
        detail = (f"{agent.id} holds {wf.id}.{st.id} with {agent.battery:.0f}% battery; "
                  f"it still needs {need:.0f}%")
        conflict = self.conflicts.detect(ctx, key, _RULE, [agent.id], None, "operator",
                                         detail, wf.id, "safety")
        ctx.emit("conflict_escalated", None, {"id": conflict.id, "reason": detail})

    def _review(self, ctx: Context, key: str) -> None:
        state = ctx.state
        conflict = state.open_conflicts[key]
        where, _, holder = key.removeprefix(f"{_RULE}:").partition("@")
        wid, _, sid = where.partition("/")
        wf = state.workflows.get(wid)
        st = wf.steps.get(sid) if wf is not None else None
        if wf is None or st is None:
            self.conflicts.resolve(ctx, conflict, "the workflow left memory")
        elif holder:
            agent = state.agents[holder]
            if st.agent != holder or st.state not in _HELD:
                self.conflicts.resolve(ctx, conflict, f"{holder} no longer holds the step")
            elif self.fits(agent, wf, st):
                # An agent may stop reporting its level (battery None fits any need).
                why = (f"{holder} no longer reports its battery" if agent.battery is None
                       else f"{holder}'s battery recovered ({agent.battery:.0f}%)")
                self.conflicts.resolve(ctx, conflict, why)
        elif st.state != "allocating":
            went = f"went to {st.agent}" if st.agent is not None else f"is {st.state}"
            self.conflicts.resolve(ctx, conflict, f"the step {went}")
        else:
            fit = next((a for a in self._able(ctx, wf, st) if self.fits(a, wf, st)), None)
            if fit is not None:
                level = "no battery" if fit.battery is None else f"{fit.battery:.0f}%"
                self.conflicts.resolve(ctx, conflict, f"{fit.id} fits the step ({level})")
