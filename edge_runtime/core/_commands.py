"""Hub commands (``edge/cmd``): argument models and what each action does.

Each accepted command ends with a ``command_reply`` event carrying its ``command_id`` (and a
small ``result``); a refused one raises a ``CoreError`` and changes nothing.
"""

from __future__ import annotations

from typing import Any, Literal

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_runtime.core._engine import Engine
from edge_runtime.core._errors import (
    CoreError,
    DependencyCycle,
    IllegalTransition,
    UnknownEntity,
)
from edge_runtime.core._machine import STEP_MACHINE, WORKFLOW_MACHINE
from edge_runtime.core._projection import StepRun, WorkflowRun
from topics import HubCommand, Identifier, Pause, Resume

__all__ = ["BadArguments", "Commands"]


class BadArguments(CoreError):
    """A hub command's ``args`` do not fit its action."""

    reason = "bad_args"


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class CreateArgs(_Args):
    template: Identifier
    """``name`` (newest version) or ``name@version``."""
    workflow_id: Identifier
    priority: int = Field(default=0, ge=-1000, le=1000)
    deadline: float | None = Field(default=None, ge=0, le=1e11)
    data: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[Identifier] = Field(default_factory=list, max_length=64)


class WorkflowArgs(_Args):
    workflow_id: Identifier
    reason: str = Field(default="", max_length=1024)


class DependencyArgs(_Args):
    workflow_id: Identifier
    depends_on: Identifier | None = None
    """Workflow-level: ``workflow_id`` starts only after ``depends_on`` completed."""
    step: Identifier | None = None
    after: Identifier | None = None
    """Step-level: ``step`` of ``workflow_id`` starts only after its step ``after``."""


class CheckpointArgs(_Args):
    workflow_id: Identifier | None = None
    label: Identifier = "manual"


class OperatorArgs(_Args):
    workflow_id: Identifier
    action: Literal["retry", "skip", "reassign", "abort", "restore", "rollback", "signal"]
    step_id: Identifier | None = None
    checkpoint: Identifier | None = None
    """``restore``: the checkpoint id (default: the newest)."""
    then: Literal["abort", "retry"] = "abort"
    """``rollback``: fail the workflow afterwards, or run the undone steps again."""
    signal: Identifier | None = None
    """``signal``: ends wait steps waiting for this signal."""


def _parse(model: type[_Args], cmd: HubCommand) -> Any:
    try:
        return model.model_validate(cmd.args)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "args"
        raise BadArguments(f"{cmd.action} args.{where}: {err['msg']}") from None


class Commands(Engine):
    """Handlers of every ``HubCommand`` action."""

    def _hub_command(self, cmd: HubCommand) -> None:
        if cmd.command_id in self._commands:
            return
        handler = getattr(self, f"_cmd_{cmd.action}", None)
        if handler is None:
            raise CoreError(f"{cmd.action} is served by the shell, not the workflow core")
        result = handler(cmd)
        self._emit("command_reply", result.pop("workflow_id", None), {
            "cmd": cmd.command_id, "action": cmd.action, "result": result,
        })

    def _wf(self, workflow_id: str) -> WorkflowRun:
        wf = self._workflows.get(workflow_id)
        if wf is None:
            state = self._archived.get(workflow_id)
            if state is not None:
                raise IllegalTransition(f"workflow {workflow_id} is in {state}; it accepts: "
                                        "nothing (it is final and archived)")
            raise UnknownEntity(f"unknown workflow {workflow_id!r}")
        return wf

    def _dependency_state(self, workflow_id: str) -> str:
        """State of a workflow to depend on (live or archived); refused unless it may end
        in ``completed``."""
        state = self._state_of(workflow_id)
        if state is None:
            raise UnknownEntity(f"unknown workflow {workflow_id!r}")
        return state

    def _step(self, wf: WorkflowRun, step_id: str | None) -> StepRun:
        if step_id is None:
            raise BadArguments(f"workflow {wf.id}: this action needs a step_id")
        st = wf.steps.get(step_id)
        if st is None:
            raise UnknownEntity(f"workflow {wf.id} has no step {step_id!r}")
        return st

    def _cmd_create_workflow(self, cmd: HubCommand) -> dict[str, Any]:
        a: CreateArgs = _parse(CreateArgs, cmd)
        template = self.template(a.template)
        if a.workflow_id in self._workflows or a.workflow_id in self._archived:
            raise CoreError(f"workflow {a.workflow_id!r} already exists")
        deps = {d: self._dependency_state(d) for d in dict.fromkeys(a.depends_on)}
        for dep, state in deps.items():
            if state in ("failed", "cancelled"):
                raise CoreError(f"workflow {a.workflow_id} cannot depend on {state} {dep}")
        self._emit("workflow_created", a.workflow_id, {
            "template": template.name, "version": template.version, "priority": a.priority,
            "deadline": a.deadline, "data": {**template.data, **a.data},
            "depends_on": list(deps),
        })
        wf = self._workflows[a.workflow_id]
        self._start_if_ready(wf)
        return {"workflow_id": wf.id, "state": wf.state}

    def _cmd_cancel_workflow(self, cmd: HubCommand) -> dict[str, Any]:
        a: WorkflowArgs = _parse(WorkflowArgs, cmd)
        wf = self._wf(a.workflow_id)
        WORKFLOW_MACHINE.check(wf, "cancel")
        self._cancel_running(wf, a.reason or "cancelled")
        self._dismiss_waiting(wf, a.reason or "cancelled")
        self._emit("workflow_cancelled", wf.id, {"reason": a.reason or "cancelled by the hub"})
        self._propagate(wf)
        self._allocate_waiting()
        return {"workflow_id": wf.id, "state": wf.state}

    def _cmd_pause_workflow(self, cmd: HubCommand) -> dict[str, Any]:
        a: WorkflowArgs = _parse(WorkflowArgs, cmd)
        wf = self._wf(a.workflow_id)
        WORKFLOW_MACHINE.check(wf, "pause")
        for st in wf.steps.values():
            if st.agent is not None:
                self._send(st.agent, Pause.model_construct(
                    command_id=f"p{self._seq + 1}-{st.id}"[:64], ts=self._now,
                    workflow_id=wf.id, step_id=st.id,
                ))
        self._emit("workflow_paused", wf.id, {})
        return {"workflow_id": wf.id, "state": wf.state, "resumes_to": wf.history}

    def _cmd_resume_workflow(self, cmd: HubCommand) -> dict[str, Any]:
        a: WorkflowArgs = _parse(WorkflowArgs, cmd)
        wf = self._wf(a.workflow_id)
        WORKFLOW_MACHINE.check(wf, "resume")
        self._emit("workflow_resumed", wf.id, {})
        for st in wf.steps.values():
            if st.agent is not None:
                self._send(st.agent, Resume.model_construct(
                    command_id=f"r{self._seq}-{st.id}"[:64], ts=self._now,
                    workflow_id=wf.id, step_id=st.id,
                ))
        self._advance(wf)
        self._allocate_waiting()
        return {"workflow_id": wf.id, "state": wf.state}

    def _cmd_add_dependency(self, cmd: HubCommand) -> dict[str, Any]:
        a: DependencyArgs = _parse(DependencyArgs, cmd)
        wf = self._wf(a.workflow_id)
        if a.depends_on is not None:
            before_state = self._dependency_state(a.depends_on)
            self._check_workflow_cycle(a.depends_on, wf)
            if wf.state != "pending" and before_state != "completed":
                raise CoreError(f"workflow {wf.id} already started ({wf.state})")
            if before_state in ("failed", "cancelled"):
                raise CoreError(
                    f"workflow {wf.id} cannot depend on {before_state} {a.depends_on}")
            self._emit("dependency_added", wf.id, {"depends_on": a.depends_on})
            before = self._workflows.get(a.depends_on)
            if before is not None and before_state == "completed":
                self._propagate(before)
            elif before is None:  # archived, hence completed: only ``wf`` may start now
                self._start_if_ready(wf)
            return {"workflow_id": wf.id}
        st = self._step(wf, a.step)
        after = self._step(wf, a.after)
        graph: nx.DiGraph[str] = nx.DiGraph()
        graph.add_edges_from((p, s.id) for s in wf.steps.values() for p in s.preds)
        graph.add_edge(after.id, st.id)
        _refuse_cycle(graph, after.id)
        if st.state != "pending":
            raise CoreError(f"step {wf.id}.{st.id} already left pending ({st.state})")
        self._emit("dependency_added", wf.id, {"step": st.id, "after": after.id})
        return {"workflow_id": wf.id}

    def _check_workflow_cycle(self, before: str, after: WorkflowRun) -> None:
        """Refuse ``before -> after`` if ``after`` already (transitively) precedes ``before``.

        Archived workflows are leaves here: they finished, so nothing can wait on a cycle
        through them."""
        graph: nx.DiGraph[str] = nx.DiGraph()
        todo = [after.id]
        while todo:
            wid = todo.pop()
            run = self._workflows.get(wid)
            for nxt in run.dependents if run is not None else ():
                if not graph.has_edge(wid, nxt):
                    graph.add_edge(wid, nxt)
                    todo.append(nxt)
        graph.add_edge(before, after.id)
        _refuse_cycle(graph, before)

    def _cmd_checkpoint(self, cmd: HubCommand) -> dict[str, Any]:
        a: CheckpointArgs = _parse(CheckpointArgs, cmd)
        if a.workflow_id is None:
            # A whole-facility snapshot is the store's job; the reply tells it where.
            return {"snapshot_seq": self._seq + 1}
        wf = self._wf(a.workflow_id)
        return {"workflow_id": wf.id, "checkpoint": self._checkpoint(wf, a.label)}

    def _cmd_operator_action(self, cmd: HubCommand) -> dict[str, Any]:
        a: OperatorArgs = _parse(OperatorArgs, cmd)
        wf = self._wf(a.workflow_id)
        act = a.action
        if wf.state in ("completed", "cancelled") or (wf.state == "failed" and act != "restore"
                                                      and act != "retry"):
            raise CoreError(f"workflow {wf.id} is {wf.state}; {act} does not apply")
        if act == "abort":
            WORKFLOW_MACHINE.check(wf, "fail")
            self._abort(wf, f"aborted by operator ({cmd.command_id})")
        elif act == "restore":
            cp_id = a.checkpoint or (next(reversed(wf.checkpoints)) if wf.checkpoints else None)
            if cp_id is None or cp_id not in wf.checkpoints:
                raise UnknownEntity(f"workflow {wf.id} has no checkpoint {cp_id!r}")
            self._cancel_running(wf, "checkpoint restore")
            self._emit("checkpoint_restored", wf.id, {"id": cp_id})
            self._advance(wf)
            self._allocate_waiting()
        elif act == "rollback":
            if a.step_id is not None:
                self._step(wf, a.step_id)
            if wf.rollback is not None:
                raise CoreError(f"workflow {wf.id} is already rolling back")
            if not self._start_rollback(wf, a.step_id, a.then):
                raise CoreError(f"workflow {wf.id}: no finished step to compensate")
        elif act == "signal":
            waiting = [s for s in wf.steps.values()
                       if s.spec.signal == a.signal and s.state == "executing"]
            if a.signal is None or not waiting:
                raise CoreError(f"workflow {wf.id}: no step waits for signal {a.signal!r}")
            for st in waiting:
                self._emit("step_done", wf.id, {"step": st.id, "outputs": {}})
            self._advance(wf)
        else:
            self._operator_on_step(wf, self._step(wf, a.step_id), act)
        return {"workflow_id": wf.id, "state": wf.state}

    def _operator_on_step(self, wf: WorkflowRun, st: StepRun, act: str) -> None:
        if act == "retry":
            STEP_MACHINE.check(st, "retry")
            if wf.state == "failed":
                self._emit("workflow_recovered", wf.id, {})
            self._emit("step_retry", wf.id, {"step": st.id, "at": None, "fresh": True})
        elif act == "skip":
            STEP_MACHINE.check(st, "skip")
            self._emit("step_skipped", wf.id, {"step": st.id, "reason": "skipped by operator"})
        else:  # reassign
            if st.state not in ("failed", "assigned", "preparing", "executing"):
                raise CoreError(f"step {wf.id}.{st.id} is {st.state}; nothing to reassign")
            self._cancel_running(wf, "reassigned by operator", only=st.id)
            self._emit("step_requeued", wf.id, {
                "step": st.id, "reason": "reassigned", "avoid": st.agent or st.last_agent,
            })
        self._advance(wf)
        self._allocate_waiting()


def _refuse_cycle(graph: nx.DiGraph[str], start: str) -> None:
    try:
        cycle = nx.find_cycle(graph, source=start)
    except nx.NetworkXNoCycle:
        return
    names = [edge[0] for edge in cycle] + [cycle[0][0]]
    raise DependencyCycle(f"dependency cycle: {' -> '.join(names)}")
