"""How each event changes the facility's state: ``Projection.apply`` (DESIGN §4).

``apply(event)`` is the only code that changes state; the core's ``handle`` decides which
events to make and applies each one, and a replay applies the stored ones. Each event kind
``k`` has one applier ``_on_k``; the data they change and the index-keeping primitives they
use live in ``_state``. Appliers never read a clock and never decide: the event says what
happened.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from edge_runtime.core._errors import CoreError
from edge_runtime.core._event import Event
from edge_runtime.core._machine import STEP_MACHINE
from edge_runtime.core._state import (
    Agent,
    ProjectionState,
    StepRun,
    WorkflowRun,
    _compensation_step,
    is_terminal,
)
from edge_runtime.core._template import Template

__all__ = ["Agent", "Projection", "StepRun", "WorkflowRun", "_compensation_step", "is_terminal"]


class Projection(ProjectionState):
    """The facility's state, changed only by applying its events in seq order."""

    def __init__(
        self, facility: str, templates: Mapping[str, Template], dedup_window: int,
        command_window: int, max_checkpoints: int,
    ) -> None:
        super().__init__(facility, templates, dedup_window, command_window, max_checkpoints)
        self._apply: dict[str, Callable[[WorkflowRun | None, dict[str, Any], Event], None]] = {
            name.removeprefix("_on_"): getattr(self, name)
            for name in dir(self) if name.startswith("_on_")
        }

    def apply(self, event: Event) -> None:
        """Update the projection with ``event`` (the next in seq order)."""
        if event.seq != self._seq + 1:
            raise CoreError(f"event seq {event.seq} does not follow {self._seq}")
        handler = self._apply.get(event.kind)
        if handler is None:
            raise CoreError(f"unknown event kind {event.kind!r}")
        data = event.data
        wf = self._workflows.get(event.workflow_id) if event.workflow_id else None
        handler(wf, data, event)
        eid = data.get("eid")
        if eid is not None:
            self._remember(self._agents[data["agent"]], eid)
        self._seq = event.seq
        self._hlc = event.hlc

    # agents

    def _on_agent_joined(self, _: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        agent = self._agents.get(d["agent"])
        if agent is None or agent.kind != d["kind"]:
            if agent is not None:
                self._idle_remove(agent)
            agent = self._agents[d["agent"]] = Agent(
                d["agent"], d["kind"], tuple(d["caps"]), d["liveness"]
            )
        agent.caps = frozenset(d["caps"])
        agent.liveness = d["liveness"]
        agent.online = True
        self._set_idle(agent)

    def _on_agent_updated(self, _: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        agent = self._agents[d["agent"]]
        agent.status = d["status"]
        agent.node = d["node"]
        agent.battery = d["battery"]
        agent.mode = d["mode"]
        agent.e_stop = d["e_stop"]
        self._set_idle(agent)

    def _on_agent_lost(self, _: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        self._idle_remove(self._agents[d["agent"]])

    # workflows

    def _on_workflow_created(self, _: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert ev.workflow_id is not None
        template = self.template(f"{d['template']}@{d['version']}")
        wf = WorkflowRun(ev.workflow_id, template, d["priority"], d["deadline"], d["data"], ev.seq)
        wf.created_hlc = ev.hlc
        self._workflows[wf.id] = wf
        for dep in d["depends_on"]:
            self._link(dep, wf)

    def _link(self, before: str, after: WorkflowRun) -> None:
        """``after`` depends on ``before`` (live, or archived: then it only names it)."""
        run = self._workflows.get(before)
        if run is not None:
            run.dependents.append(after.id)
        after.depends_on.append(before)

    def _on_workflow_started(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        self._wf_fire(wf, "start")

    def _on_workflow_completed(self, wf: WorkflowRun | None, d: dict[str, Any], e: Event) -> None:
        assert wf is not None
        wf.ended_hlc = e.hlc
        self._wf_fire(wf, "complete")

    def _end(self, wf: WorkflowRun, event: str, reason: str, hlc: int) -> None:
        for st in wf.steps.values():
            if st.state in ("ready", "allocating"):
                self._dequeue(wf, st)
            self._release(wf, st)
            st.retry_at = None
        wf.awaiting.clear()
        wf.reason = reason
        wf.ended_hlc = hlc
        self._wf_fire(wf, event)

    def _on_workflow_failed(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        self._end(wf, "fail", d["reason"], ev.hlc)

    def _on_workflow_cancelled(self, wf: WorkflowRun | None, d: dict[str, Any], e: Event) -> None:
        assert wf is not None
        self._end(wf, "cancel", d["reason"], e.hlc)

    def _on_workflow_archived(self, wf: WorkflowRun | None, d: dict[str, Any], e: Event) -> None:
        """The workflow leaves memory; only its id and terminal state stay."""
        if wf is None or wf.state not in ("completed", "cancelled"):
            raise CoreError(f"cannot archive workflow {e.workflow_id!r}: it is not "
                            "completed or cancelled")
        for st in wf.steps.values():  # nothing should be held by now; be sure of it
            if st.state in ("ready", "allocating"):
                self._dequeue(wf, st)
            self._release(wf, st)
        del self._workflows[wf.id]
        # A literal, not the event's string: every entry shares one object per state.
        self._archived[wf.id] = "completed" if wf.state == "completed" else "cancelled"

    def _on_workflow_paused(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        self._wf_fire(wf, "pause")

    def _on_workflow_resumed(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        self._wf_fire(wf, "resume")

    def _on_workflow_recovered(self, wf: WorkflowRun | None, d: dict[str, Any], e: Event) -> None:
        assert wf is not None
        wf.reason = ""
        wf.ended_hlc = 0
        self._wf_fire(wf, "recover")

    def _on_dependency_added(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        if "depends_on" in d:
            self._link(d["depends_on"], wf)
        else:
            st = wf.steps[d["step"]]
            st.preds = (*st.preds, d["after"])

    def _on_checkpoint_taken(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        wf.checkpoints[d["id"]] = d
        while len(wf.checkpoints) > self._max_checkpoints:
            del wf.checkpoints[next(iter(wf.checkpoints))]

    def _on_checkpoint_restored(self, wf: WorkflowRun | None, d: dict[str, Any], e: Event) -> None:
        assert wf is not None
        cp = wf.checkpoints[d["id"]]
        for st in list(wf.steps.values()):
            if st.state in ("ready", "allocating"):
                self._dequeue(wf, st)
            self._release(wf, st)
            if st.comp_of is not None:
                del wf.steps[st.id]
        for sid, (state, attempt, failures, outputs, done_seq) in cp["steps"].items():
            st = wf.steps[sid]
            # Finished steps keep their result; anything in flight starts over. Agents still
            # waiting at a barrier stay arrived; a released barrier's agents have left.
            if st.state in ("done", "compensated"):
                st.arrived = []
            st.state = state if state in ("done", "skipped", "compensated") else "pending"
            st.attempt, st.failures, st.outputs, st.done_seq = attempt, failures, outputs, done_seq
            st.retry_at, st.error, st.progress = None, None, 0.0
        wf.data = dict(cp["data"])
        wf.awaiting.clear()
        wf.rollback = None
        wf.reason = ""
        self._wf_fire(wf, "restore")

    def _on_compensation_started(self, wf: WorkflowRun | None, d: dict[str, Any], e: Event) -> None:
        assert wf is not None
        wf.rollback = d["then"]
        for st in wf.steps.values():
            if st.state in ("ready", "allocating"):
                self._dequeue(wf, st)
            if st.state not in ("done", "skipped", "compensated", "pending", "failed"):
                self._release(wf, st)
                STEP_MACHINE.fire(st, "requeue")
            st.retry_at = None
        wf.awaiting.clear()
        prev: tuple[str, ...] = ()
        for sid in d["steps"]:
            comp = wf.steps[sid].spec.compensation
            assert comp is not None
            run = StepRun(_compensation_step(sid, comp), prev)
            run.comp_of = sid
            wf.steps[run.id] = run
            prev = (run.id,)
        self._summarise(wf)

    def _on_rollback_finished(self, wf: WorkflowRun | None, d: dict[str, Any], e: Event) -> None:
        assert wf is not None
        wf.rollback = None
        for sid in [s for s, st in wf.steps.items() if st.comp_of is not None]:
            del wf.steps[sid]
        for sid in d["reset"]:
            st = wf.steps[sid]
            self._release(wf, st)
            if st.state == "compensated":
                st.arrived = []  # a released barrier's agents have left
            if st.state != "pending":
                STEP_MACHINE.fire(st, "reset")
            st.outputs, st.done_seq, st.failures, st.error = None, 0, 0, None

    def _on_command_reply(self, _: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        self._commands[d["cmd"]] = None
        if len(self._commands) > self._command_window:
            del self._commands[next(iter(self._commands))]

    # steps

    def _on_step_ready(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        st.retry_at = None
        STEP_MACHINE.fire(st, "ready")
        self.transitions += 1
        kind = st.spec.kind
        if kind == "wait":
            st.wait_until = d.get("until")
            self._step_fire(wf, st, "execute")
        elif kind == "sync":
            st.outputs = {"agents": list(d["agents"])}  # arrivals so far are kept
            st.timeout_at = d["timeout_at"]
            self._step_fire(wf, st, "execute")
        else:
            self._step_fire(wf, st, "allocate")
            self._enqueue(wf, st)

    def _on_step_assigned(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        if st.state == "pending":
            st.retry_at = None
            STEP_MACHINE.fire(st, "ready")
            STEP_MACHINE.fire(st, "allocate")
            self.transitions += 2
        else:
            self._dequeue(wf, st)
        agent = self._agents[d["agent"]]
        st.agent = agent.id
        st.attempt = d["attempt"]
        st.timeout_at = d["timeout_at"]
        st.progress = 0.0
        st.avoid = None
        agent.task = (wf.id, st.id)
        self._set_idle(agent)
        for res in st.spec.resources:
            self._holds[res] = (wf.id, st.id)
        self._step_fire(wf, st, "assign")

    def _on_step_accepted(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        self._step_fire(wf, wf.steps[d["step"]], "prepare")

    def _on_step_started(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        if st.state == "assigned":
            self._step_fire(wf, st, "prepare")
        self._step_fire(wf, st, "execute")

    def _on_step_progress(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        wf.steps[d["step"]].progress = d["progress"]

    def _on_step_done(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        state = st.state
        if state == "assigned":
            self._step_fire(wf, st, "prepare")
            state = "preparing"
        if state in ("preparing", "ready"):
            self._step_fire(wf, st, "execute")
        self._step_fire(wf, st, "validate")
        self._step_fire(wf, st, "clean_up")
        st.outputs = d["outputs"]
        st.progress = 1.0
        st.done_seq = ev.seq
        self._release(wf, st)
        self._step_fire(wf, st, "finish")
        if st.comp_of is not None:
            self._step_fire(wf, wf.steps[st.comp_of], "compensate")

    def _on_step_failed(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        if st.state in ("ready", "allocating"):
            self._dequeue(wf, st)
        self._release(wf, st)
        st.error = d["error"]
        if d["counts"]:
            st.failures += 1
        self._step_fire(wf, st, "fail")

    def _on_step_retry(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        st.retry_at = d["at"]
        if d.get("fresh"):
            st.failures = 0
        if st.id in wf.awaiting:
            wf.awaiting.remove(st.id)
        self._step_fire(wf, st, "retry")

    def _on_step_requeued(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        if st.state in ("ready", "allocating"):
            self._dequeue(wf, st)
        st.avoid = d.get("avoid")
        self._release(wf, st)
        if st.id in wf.awaiting:
            wf.awaiting.remove(st.id)
            STEP_MACHINE.fire(st, "retry")
        else:
            STEP_MACHINE.fire(st, "requeue")
        self.transitions += 1
        self._summarise(wf)

    def _on_step_skipped(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        if st.state in ("ready", "allocating"):
            self._dequeue(wf, st)
        if st.id in wf.awaiting:
            wf.awaiting.remove(st.id)
        st.error = d["reason"]
        self._step_fire(wf, st, "skip")

    def _on_step_decided(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        for event in ("ready", "execute", "validate", "clean_up"):
            self._step_fire(wf, st, event)
        st.outputs = {"result": d["result"]}
        st.done_seq = ev.seq
        self._step_fire(wf, st, "finish")

    def _on_sync_arrived(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        if d["agent"] not in st.arrived:
            st.arrived.append(d["agent"])

    def _on_operator_needed(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        wf.awaiting.append(d["step"])
