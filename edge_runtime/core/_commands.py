"""Hub commands (``edge/cmd``): what each action does.

Each accepted command ends with a ``command_reply`` event carrying its ``command_id`` (and a
small ``result``); a refused one raises a ``CoreError`` and changes nothing. A command id
seen before (a redelivery) is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import networkx as nx

from edge_runtime.core._allocation import Allocation
from edge_runtime.core._command_args import (
    CheckpointArgs,
    CoordinationArgs,
    CreateArgs,
    DependencyArgs,
    WorkflowArgs,
    parse_args,
)
from edge_runtime.core._confirm import Confirmations
from edge_runtime.core._conflict import Conflicts
from edge_runtime.core._context import Context
from edge_runtime.core._errors import CoreError, DependencyCycle, UnknownEntity
from edge_runtime.core._facility_stop import FacilityStops
from edge_runtime.core._flow import Flow
from edge_runtime.core._hub_actions import HubActions
from edge_runtime.core._lending import Lending
from edge_runtime.core._lifecycle import Lifecycle
from edge_runtime.core._lookup import find_step, find_workflow
from edge_runtime.core._machine import WORKFLOW_TERMINAL
from edge_runtime.core._operator import OperatorActions
from edge_runtime.core._recovery import Recovery
from edge_runtime.core._state import FacilityState, WorkflowRun
from edge_runtime.core._sync import SyncPoints
from edge_runtime.core._workflow_deps import WorkflowDeps
from topics import HubCommand

if TYPE_CHECKING:
    from edge_runtime.core._consistency import ConsistencyRules

__all__ = ["HubCommands"]

_Action = Callable[[Context, HubCommand], dict[str, Any]]


class HubCommands:
    """Handles ``HubCommand``: workflows created, cancelled, paused, linked, recovered."""

    consistency: ConsistencyRules | None = None
    """Set by the core: refuses stale commands before they run (``_consistency``)."""

    def __init__(
        self, lifecycle: Lifecycle, flow: Flow, allocation: Allocation, sync: SyncPoints,
        recovery: Recovery, confirmations: Confirmations, conflicts: Conflicts,
    ) -> None:
        self.lifecycle = lifecycle
        self.flow = flow
        self.allocation = allocation
        self.sync = sync
        self.recovery = recovery
        self.confirmations = confirmations
        self.operator = OperatorActions(lifecycle, flow, allocation, recovery, confirmations)
        self.deps = WorkflowDeps(flow, _check_workflow_cycle)
        """Typed and external dependencies between workflows (``_workflow_deps``)."""
        self._actions: dict[str, _Action] = {
            "create_workflow": self.create_workflow,
            "cancel_workflow": self.cancel_workflow,
            "pause_workflow": self.pause_workflow,
            "resume_workflow": self.resume_workflow,
            "add_dependency": self.add_dependency,
            "checkpoint": self.checkpoint,
            "set_coordination": self.set_coordination,
            "operator_action": self.operator.act,
            **conflicts.actions(),
            # update_workflow, recover, list_checkpoints, sync_arrival; the scoped stop
            **HubActions(lifecycle, flow, allocation, sync, self.operator).actions(),
            **FacilityStops(conflicts, allocation).actions(),
            # resolve_dependency: the hub's verdict on an external dependency
            **self.deps.actions(),
            # agents and resources lent between facilities (_lending)
            **Lending(allocation, confirmations).actions(),
        }

    def handlers(self) -> dict[type, Callable[[Context, Any], None]]:
        """The inputs this component takes."""
        return {HubCommand: self.command}

    def command(self, ctx: Context, cmd: HubCommand) -> None:
        """Run ``cmd`` once and reply with a ``command_reply`` event."""
        if cmd.command_id in ctx.state.commands:
            return
        action = self._actions.get(cmd.action)
        if action is None:
            raise CoreError(f"{cmd.action} is served by the shell, not the workflow core")
        # A stale command is refused by a recorded decision, not run (``_consistency``).
        refused = None if self.consistency is None else self.consistency.check_command(ctx, cmd)
        result = action(ctx, cmd) if refused is None else refused
        ctx.emit("command_reply", result.pop("workflow_id", None), {
            "cmd": cmd.command_id, "action": cmd.action, "result": result,
        })

    def create_workflow(self, ctx: Context, cmd: HubCommand) -> dict[str, Any]:
        """A new workflow from a template; it starts once its dependencies completed."""
        a: CreateArgs = parse_args(CreateArgs, cmd)
        state = ctx.state
        template = state.template(a.template)
        if a.workflow_id in state.workflows or a.workflow_id in state.archived:
            raise CoreError(f"workflow {a.workflow_id!r} already exists")
        plain, typed = self.deps.for_create(state, a)  # typed, external (_workflow_deps)
        deps = {d: _dependency_state(state, d) for d in plain}
        for dep, dep_state in deps.items():
            if dep_state in ("failed", "cancelled"):
                raise CoreError(f"workflow {a.workflow_id} cannot depend on {dep_state} {dep}")
        ctx.emit("workflow_created", a.workflow_id, {
            "template": template.name, "version": template.version, "priority": a.priority,
            "deadline": a.deadline, "data": {**template.data, **a.data},
            "depends_on": list(deps),
            **({"dependencies": typed} if typed else {}),
            # Only when chosen: older logs and plain workflows read the template's.
            **({"coordination": a.coordination} if a.coordination else {}),
            **({"agents": a.agents} if a.agents is not None else {}),
            **({"labels": a.labels} if a.labels else {}),
        })
        wf = state.workflows[a.workflow_id]
        if a.deadline is not None:  # the deadline_at_risk rule looks again then (_temporal)
            ctx.set_timer(f"deadline:{wf.id}", a.deadline)
        self.deps.evaluate(ctx, wf)
        self.flow.start_if_ready(ctx, wf)
        return {"workflow_id": wf.id, "state": wf.state}

    def set_coordination(self, ctx: Context, cmd: HubCommand) -> dict[str, Any]:
        """Change a live workflow's protocol (and its allowed agents); it applies to the
        steps allocated from now on — steps already assigned keep their agents."""
        a: CoordinationArgs = parse_args(CoordinationArgs, cmd)
        wf = find_workflow(ctx.state, a.workflow_id)
        if wf.state in WORKFLOW_TERMINAL:
            raise CoreError(f"workflow {wf.id} is {wf.state}")
        ctx.emit("coordination_set", wf.id, {"protocol": a.protocol, "agents": a.agents})
        self.allocation.allocate_waiting(ctx)
        return {"workflow_id": wf.id, "protocol": wf.coordination,
                "agents": wf.allowed_agents}

    def cancel_workflow(self, ctx: Context, cmd: HubCommand) -> dict[str, Any]:
        """Cancel: waiting steps leave; agents holding steps are told to stop, and the
        workflow is ``cancelling`` until each confirmed (``_confirm``)."""
        a: WorkflowArgs = parse_args(WorkflowArgs, cmd)
        wf = find_workflow(ctx.state, a.workflow_id)
        self.lifecycle.workflow_machine.check(wf, "cancel")
        self.confirmations.cancel(ctx, wf, a.reason or "cancelled by the hub")
        self.allocation.allocate_waiting(ctx)
        return {"workflow_id": wf.id, "state": wf.state}

    def pause_workflow(self, ctx: Context, cmd: HubCommand) -> dict[str, Any]:
        """Pause: agents holding its steps are told to pause, and the workflow is ``pausing``
        until each confirmed; resume returns to the substate it left."""
        a: WorkflowArgs = parse_args(WorkflowArgs, cmd)
        wf = find_workflow(ctx.state, a.workflow_id)
        self.lifecycle.workflow_machine.check(wf, "pause")
        self.confirmations.pause(ctx, wf)
        return {"workflow_id": wf.id, "state": wf.state, "resumes_to": wf.history}

    def resume_workflow(self, ctx: Context, cmd: HubCommand) -> dict[str, Any]:
        """Resume where it paused (or was pausing); agents holding its steps go on."""
        a: WorkflowArgs = parse_args(WorkflowArgs, cmd)
        wf = find_workflow(ctx.state, a.workflow_id)
        self.lifecycle.workflow_machine.check(wf, "resume")
        self.confirmations.resume(ctx, wf)
        return {"workflow_id": wf.id, "state": wf.state}

    def add_dependency(self, ctx: Context, cmd: HubCommand) -> dict[str, Any]:
        """A workflow waits for another, or a step for another step; cycles are refused."""
        a: DependencyArgs = parse_args(DependencyArgs, cmd)
        state = ctx.state
        wf = find_workflow(state, a.workflow_id)
        if a.depends_on is None and (a.type != "sequential" or a.conditions or a.facility):
            raise CoreError("add_dependency: type, conditions and facility go with depends_on")
        typed = None if a.depends_on is None else self.deps.add(ctx, wf, a)
        if typed is not None:  # a typed or external one (_workflow_deps)
            return typed
        if a.depends_on is not None:
            before_state = _dependency_state(state, a.depends_on)
            _check_workflow_cycle(state, a.depends_on, wf)
            if wf.state != "pending" and before_state != "completed":
                raise CoreError(f"workflow {wf.id} already started ({wf.state})")
            if before_state in ("failed", "cancelled"):
                raise CoreError(
                    f"workflow {wf.id} cannot depend on {before_state} {a.depends_on}")
            ctx.emit("dependency_added", wf.id, {"depends_on": a.depends_on})
            before = state.workflows.get(a.depends_on)
            if before is not None and before_state == "completed":
                self.flow.propagate(ctx, before)
            elif before is None:  # archived, hence completed: only ``wf`` may start now
                self.flow.start_if_ready(ctx, wf)
            return {"workflow_id": wf.id}
        st = find_step(wf, a.step)
        after = find_step(wf, a.after)
        graph: nx.DiGraph[str] = nx.DiGraph()
        graph.add_edges_from((p, s.id) for s in wf.steps.values() for p in s.preds)
        graph.add_edge(after.id, st.id)
        _refuse_cycle(graph, after.id)
        if st.state != "pending":
            raise CoreError(f"step {wf.id}.{st.id} already left pending ({st.state})")
        ctx.emit("dependency_added", wf.id, {"step": st.id, "after": after.id})
        return {"workflow_id": wf.id}

    def checkpoint(self, ctx: Context, cmd: HubCommand) -> dict[str, Any]:
        """A recovery checkpoint of one workflow (or, with no id, where the store's
        facility snapshot will be taken)."""
        a: CheckpointArgs = parse_args(CheckpointArgs, cmd)
        if a.workflow_id is None:
            # A whole-facility snapshot is the store's job; the reply tells it where.
            return {"snapshot_seq": ctx.state.seq + 1}
        wf = find_workflow(ctx.state, a.workflow_id)
        return {"workflow_id": wf.id, "checkpoint": self.recovery.checkpoint(ctx, wf, a.label)}


def _dependency_state(state: FacilityState, workflow_id: str) -> str:
    """State of a workflow to depend on (live or archived)."""
    found = state.state_of(workflow_id)
    if found is None:
        raise UnknownEntity(f"unknown workflow {workflow_id!r}")
    return found


def _check_workflow_cycle(state: FacilityState, before: str, after: WorkflowRun) -> None:
    """Refuse ``before -> after`` if ``after`` already (transitively) precedes ``before``.

    Archived workflows are leaves here: they finished, so nothing can wait on a cycle
    through them."""
    graph: nx.DiGraph[str] = nx.DiGraph()
    todo = [after.id]
    while todo:
        wid = todo.pop()
        run = state.workflows.get(wid)
        for nxt in run.dependents if run is not None else ():
            if not graph.has_edge(wid, nxt):
                graph.add_edge(wid, nxt)
                todo.append(nxt)
    graph.add_edge(before, after.id)
    _refuse_cycle(graph, before)


def _refuse_cycle(graph: nx.DiGraph[str], start: str) -> None:
    try:
        cycle = nx.find_cycle(graph, source=start)
    except nx.NetworkXNoCycle:
        return
    names = [edge[0] for edge in cycle] + [cycle[0][0]]
    raise DependencyCycle(f"dependency cycle: {' -> '.join(names)}")
