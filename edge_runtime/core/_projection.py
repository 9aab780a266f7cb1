"""How each event changes the facility's state: ``Projection.apply`` (docs/design.md §4).

``apply(event)`` is the only code that changes the ``FacilityState``; the core's components
decide which events to make and apply each one through it, and a replay applies the stored
ones. Each event kind ``k`` has one applier ``_on_k``. Appliers never read a clock and never
decide: the event says what happened.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge_runtime.core._auction_events import AuctionEvents
from edge_runtime.core._coalition_events import CoalitionEvents
from edge_runtime.core._confirm_events import ConfirmationEvents
from edge_runtime.core._conflict_events import ConflictEvents
from edge_runtime.core._consensus_events import ConsensusEvents
from edge_runtime.core._consistency_events import ConsistencyEvents
from edge_runtime.core._contention_events import ContentionEvents
from edge_runtime.core._errors import CoreError
from edge_runtime.core._event import Event
from edge_runtime.core._hierarchy_events import HierarchyEvents
from edge_runtime.core._hub_action_events import HubActionEvents
from edge_runtime.core._lending_events import LendingEvents
from edge_runtime.core._lifecycle import Lifecycle
from edge_runtime.core._recovery_events import RecoveryEvents
from edge_runtime.core._state import (
    Agent,
    FacilityState,
    WorkflowRun,
)
from edge_runtime.core._workflow_deps_events import WorkflowDepEvents
from edge_runtime.core._workqueue_events import WorkQueueEvents

__all__ = ["Projection"]

_Applier = Callable[[WorkflowRun | None, dict[str, Any], Event], None]


class Projection(
    ConfirmationEvents, ConflictEvents, ConsensusEvents, HierarchyEvents, ContentionEvents,
    AuctionEvents, WorkQueueEvents, ConsistencyEvents, CoalitionEvents, RecoveryEvents,
    HubActionEvents, LendingEvents, WorkflowDepEvents,
):
    """Applies the facility's events, in seq order, to its ``FacilityState``."""

    def __init__(
        self, state: FacilityState, lifecycle: Lifecycle, *, dedup_window: int,
        command_window: int, max_checkpoints: int,
    ) -> None:
        self.state = state
        self.lifecycle = lifecycle
        self.dedup_window = dedup_window
        """Event ids remembered per agent (duplicate filter)."""
        self.command_window = command_window
        """Hub command ids remembered (duplicate filter)."""
        self.max_checkpoints = max_checkpoints
        """Recovery checkpoints kept per workflow."""
        self.broken = False
        """An applier raised midway: the state may hold half an event; rebuild it from the log."""
        self._appliers: dict[str, _Applier] = {
            name.removeprefix("_on_"): getattr(self, name)
            for name in dir(self) if name.startswith("_on_")
        }

    def apply(self, event: Event) -> None:
        """Update the state with ``event`` (the next in seq order)."""
        state = self.state
        if event.seq != state.seq + 1:
            raise CoreError(f"event seq {event.seq} does not follow {state.seq}")
        applier = self._appliers.get(event.kind)
        if applier is None:
            raise CoreError(f"unknown event kind {event.kind!r}")
        data = event.data
        wf = state.workflows.get(event.workflow_id) if event.workflow_id else None
        try:
            applier(wf, data, event)
        except Exception:
            self.broken = True
            raise
        eid = data.get("eid")
        if eid is not None:
            self._remember(state.agents[data["agent"]], eid)
        if wf is not None:  # when it last changed: stale commands (``_consistency``)
            wf.last_seq, wf.last_hlc = event.seq, event.hlc
        state.seq = event.seq
        state.hlc = event.hlc

    def _remember(self, agent: Agent, eid: str) -> None:
        agent.recent.append(eid)
        agent.recent_ids[eid] = None
        if len(agent.recent) > self.dedup_window:
            del agent.recent_ids[agent.recent.popleft()]

    def _lose(self, agent: Agent) -> None:
        agent.online = False
        self.state.set_idle(agent)
        if agent.queued:
            self._unqueue_agent(agent)

    # agents

    def _on_agent_joined(self, _: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        agent = self.state.agents.get(d["agent"])
        if agent is None or agent.kind != d["kind"]:
            if agent is not None:
                self._lose(agent)
            agent = self.state.agents[d["agent"]] = Agent(
                d["agent"], d["kind"], tuple(d["caps"]), d["liveness"]
            )
        agent.caps = frozenset(d["caps"])
        agent.liveness = d["liveness"]
        agent.bids = d.get("bids", True)
        agent.online = True
        self.state.set_idle(agent)

    def _on_agent_updated(self, _: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        agent = self.state.agents[d["agent"]]
        agent.status = d["status"]
        agent.node = d["node"]
        agent.battery = d["battery"]
        agent.mode = d["mode"]
        agent.e_stop = d["e_stop"]
        self.state.set_idle(agent)

    def _on_agent_lost(self, _: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        self._lose(self.state.agents[d["agent"]])

    # workflows

    def _on_workflow_created(self, _: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert ev.workflow_id is not None
        template = self.state.template(f"{d['template']}@{d['version']}")
        wf = WorkflowRun(ev.workflow_id, template, d["priority"], d["deadline"], d["data"], ev.seq)
        wf.created_hlc = ev.hlc
        wf.coordination = d.get("coordination", template.coordination)
        wf.allowed_agents = d.get("agents")
        wf.labels = d.get("labels")
        self.state.workflows[wf.id] = wf
        if wf.deadline is not None:
            self.state.deadlines += 1
        for dep in d["depends_on"]:
            self._link(dep, wf)
        if "dependencies" in d:  # typed and external ones (_workflow_deps)
            self._add_deps(wf, d["dependencies"])

    def _link(self, before: str, after: WorkflowRun) -> None:
        """``after`` depends on ``before`` (live, or archived: then it only names it)."""
        run = self.state.workflows.get(before)
        if run is not None:
            run.dependents.append(after.id)
        after.depends_on.append(before)

    def _on_coordination_set(self, wf: WorkflowRun | None, d: dict[str, Any], e: Event) -> None:
        assert wf is not None
        wf.coordination = d["protocol"]
        wf.allowed_agents = d["agents"]

    def _on_workflow_started(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        self.lifecycle.workflow(wf, "start")

    def _on_workflow_completed(self, wf: WorkflowRun | None, d: dict[str, Any], e: Event) -> None:
        assert wf is not None
        self._drop_spans(wf)
        wf.ended_hlc = e.hlc
        self.lifecycle.workflow(wf, "complete")

    def _end(self, wf: WorkflowRun, event: str, reason: str, hlc: int) -> None:
        self._drop_spans(wf)
        for st in wf.steps.values():
            if st.state in ("ready", "allocating"):
                self.state.dequeue(wf, st)
            self.state.release(wf, st)
            st.retry_at = None
            st.unconfirmed = None
        wf.awaiting.clear()
        wf.reason = reason
        wf.ended_hlc = hlc
        self.lifecycle.workflow(wf, event)

    def _on_workflow_failed(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        self._end(wf, "fail", d["reason"], ev.hlc)

    def _on_workflow_cancelled(self, wf: WorkflowRun | None, d: dict[str, Any], e: Event) -> None:
        assert wf is not None
        self._end(wf, "cancelled" if wf.state == "cancelling" else "cancel", d["reason"], e.hlc)

    def _on_workflow_archived(self, wf: WorkflowRun | None, d: dict[str, Any], e: Event) -> None:
        """The workflow leaves memory; only its id and terminal state stay."""
        if wf is None or wf.state not in ("completed", "cancelled"):
            raise CoreError(f"cannot archive workflow {e.workflow_id!r}: it is not "
                            "completed or cancelled")
        self._drop_spans(wf)
        for st in wf.steps.values():  # nothing should be held by now; be sure of it
            if st.state in ("ready", "allocating"):
                self.state.dequeue(wf, st)
            self.state.release(wf, st)
        del self.state.workflows[wf.id]
        if wf.deadline is not None:
            self.state.deadlines -= 1
        # A literal, not the event's string: every entry shares one object per state.
        self.state.archived[wf.id] = "completed" if wf.state == "completed" else "cancelled"

    def _on_workflow_paused(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        self._unqueue_workflow(wf)
        self.lifecycle.workflow(wf, "paused" if wf.state == "pausing" else "pause")

    def _on_workflow_resumed(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        for st in wf.steps.values():
            # Pauses still unconfirmed: the resume overtook them. A step's cancel (a
            # withdrawal) still waits for its agent.
            if st.unconfirmed is not None and st.unconfirmed[1] == "pause":
                st.unconfirmed = None
        self.lifecycle.workflow(wf, "resume")

    def _on_dependency_added(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        if "type" in d:  # a typed or external one (_workflow_deps)
            self._add_deps(wf, [d])
        elif "depends_on" in d:
            self._link(d["depends_on"], wf)
        else:
            st = wf.steps[d["step"]]
            st.preds = (*st.preds, d["after"])

    def _on_command_reply(self, _: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        self.state.commands[d["cmd"]] = ev.seq
        if len(self.state.commands) > self.command_window:
            del self.state.commands[next(iter(self.state.commands))]

    # steps

    def _on_step_ready(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        st.retry_at = None
        self.lifecycle.step_quietly(st, "ready")
        kind = st.spec.kind
        if kind == "wait":
            st.wait_until = d.get("until")
            self.lifecycle.step(wf, st, "execute")
        elif kind == "sync":
            st.outputs = {"agents": list(d["agents"])}  # arrivals so far are kept
            st.timeout_at = d["timeout_at"]
            self.lifecycle.step(wf, st, "execute")
        else:
            self.lifecycle.step(wf, st, "allocate")
            self.state.enqueue(wf, st)

    def _on_step_assigned(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        if st.state == "pending":
            st.retry_at = None
            self.lifecycle.step_quietly(st, "ready")
            self.lifecycle.step_quietly(st, "allocate")
        else:
            self.state.dequeue(wf, st)
        agent = self.state.agents[d["agent"]]
        st.agent = agent.id
        st.attempt = d["attempt"]
        st.timeout_at = d["timeout_at"]
        st.stall_at = d.get("stall_at")
        st.assigned_at = (ev.hlc >> 16) / 1000  # its time (ms), for predicted windows
        st.progress = 0.0
        st.avoid = None
        st.seen_version = wf.data_version
        agent.task = (wf.id, st.id)
        self.state.set_idle(agent)
        for res in st.spec.resources:
            self.state.holds[res] = (wf.id, st.id)
        self._hold_across(wf, st, d)
        self.lifecycle.step(wf, st, "assign")

    def _on_step_accepted(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        self.lifecycle.step(wf, wf.steps[d["step"]], "prepare")

    def _on_step_started(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        if st.state == "assigned":
            self.lifecycle.step(wf, st, "prepare")
        self.lifecycle.step(wf, st, "execute")

    def _on_step_progress(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        wf.steps[d["step"]].progress = d["progress"]

    def _on_step_done(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        state = st.state
        if state == "assigned":
            self.lifecycle.step(wf, st, "prepare")
            state = "preparing"
        if state in ("preparing", "ready"):
            self.lifecycle.step(wf, st, "execute")
        self.lifecycle.step(wf, st, "validate")
        self.lifecycle.step(wf, st, "clean_up")
        st.outputs = d["outputs"]
        st.progress = 1.0
        st.unconfirmed = None
        st.done_seq = ev.seq
        self.state.release(wf, st)
        self.lifecycle.step(wf, st, "finish")
        self._end_spans(wf, st)
        if st.comp_of is not None:
            self.lifecycle.step(wf, wf.steps[st.comp_of], "compensate")

    def _on_step_failed(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        if st.state in ("ready", "allocating"):
            self.state.dequeue(wf, st)
        self.state.release(wf, st)
        st.unconfirmed = None
        st.error = d["error"]
        if d["counts"]:
            st.failures += 1
        self.lifecycle.step(wf, st, "fail")

    def _on_step_retry(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        st.retry_at = d["at"]
        if d.get("fresh"):
            st.failures = 0
        if st.id in wf.awaiting:
            wf.awaiting.remove(st.id)
        self.lifecycle.step(wf, st, "retry")

    def _on_step_requeued(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        if st.state in ("ready", "allocating"):
            self.state.dequeue(wf, st)
        st.avoid = d.get("avoid")
        st.unconfirmed = None
        self.state.release(wf, st)
        if st.id in wf.awaiting:
            wf.awaiting.remove(st.id)
            self.lifecycle.step(wf, st, "retry")
        else:
            self.lifecycle.step(wf, st, "requeue")

    def _on_step_skipped(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        if st.state in ("ready", "allocating"):
            self.state.dequeue(wf, st)
        if st.id in wf.awaiting:
            wf.awaiting.remove(st.id)
        st.error = d["reason"]
        self.lifecycle.step(wf, st, "skip")
        self._end_spans(wf, st)

    def _on_step_decided(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        # A voted decision executes already (``vote_opened``); a computed one starts here.
        for event in ("ready", "execute", "validate", "clean_up")[
                2 if st.state == "executing" else 0:]:
            self.lifecycle.step(wf, st, event)
        st.outputs = {"result": d["result"]}
        st.done_seq = ev.seq
        self.lifecycle.step(wf, st, "finish")
        self._end_spans(wf, st)

    def _on_sync_arrived(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        if d["agent"] not in st.arrived:
            st.arrived.append(d["agent"])

