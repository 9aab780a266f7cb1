"""A scripted fleet: agents that answer every ``Assign`` the core sends with accepted →
started → (progress …) → done, in virtual time. Tests, benchmarks and workload generators
drive a ``Core`` with it; nothing here is random.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from edge_runtime.core import (
    Archive,
    Core,
    Effect,
    Input,
    Publish,
    WorkflowView,
    decode_workflow_record,
)
from topics import (
    AgentConn,
    AgentKindName,
    Assign,
    Cancel,
    CommandAck,
    HubCommand,
    Pause,
    StepAccepted,
    StepDone,
    StepFailed,
    StepProgress,
    StepStarted,
    SyncArrival,
    SyncRelease,
)

__all__ = ["OutputsFn", "ScriptedFleet"]

OutputsFn = Callable[[Assign], dict[str, Any]]
"""What an agent reports as the outputs of a step it was assigned."""


class ScriptedFleet:
    """Feeds a core and answers its commands; records every input it fed, with its time."""

    def __init__(
        self, core: Core, *, outputs: OutputsFn | None = None, progress_steps: int = 0,
        tick: float = 0.01, start: float = 1000.0,
    ) -> None:
        self.core = core
        self.now = start
        self.tick = tick
        self.progress_steps = progress_steps
        self.outputs: OutputsFn = outputs or (lambda a: {})
        self.fed: list[tuple[Input, float]] = []
        """Every input given to the core, with its ``now``, in order."""
        self.effects: list[Effect] = []
        self.records: dict[str, bytes] = {}
        """Final records of archived workflows (what the shell writes to the store), by id."""
        self._todo: deque[tuple[str, Assign]] = deque()
        self._met: list[tuple[str, str, str]] = []
        """Coalition members (agent, workflow, step) released from their meeting: their
        ``Assign`` is answered again, with the work after the meeting."""
        self._teams: dict[tuple[str, str, str], Assign] = {}
        """Coalition members' last ``Assign`` until their meeting, by (agent, wf, step)."""
        self._n = 0

    def feed(self, item: Input) -> list[Effect]:
        """Give one input to the core at the next tick; its effects."""
        self.now = round(self.now + self.tick, 6)
        fx = self.core.handle(item, self.now)
        self.fed.append((item, self.now))
        self.effects.extend(fx)
        for effect in fx:
            if isinstance(effect, Publish) and isinstance(effect.message, Assign):
                self._todo.append((effect.topic.rsplit("/", 2)[1], effect.message))
                if effect.message.team:
                    msg = effect.message
                    self._teams[(effect.topic.rsplit("/", 2)[1], msg.workflow_id,
                                 msg.step_id)] = msg
            elif isinstance(effect, Publish) and isinstance(effect.message, SyncRelease):
                self._released(effect.topic.rsplit("/", 2)[1], effect.message)
            elif isinstance(effect, Archive):
                self.records[effect.workflow_id] = effect.record
        return fx

    def workflow(self, workflow_id: str) -> WorkflowView | None:
        """A workflow as the core holds it, or from its record once archived; else ``None``."""
        view = self.core.workflow(workflow_id)
        if view is None and workflow_id in self.records:
            return decode_workflow_record(self.records[workflow_id])
        return view

    def agent(self, agent_id: str, kind: AgentKindName, caps: list[str]) -> None:
        """Announce an agent."""
        self.feed(AgentConn(agent_id=agent_id, online=True, kind=kind, capabilities=caps,
                            liveness_s=3600))

    def create(self, template: str, workflow_id: str, **args: Any) -> list[Effect]:
        """Send a ``create_workflow`` hub command."""
        self._n += 1
        return self.feed(HubCommand(command_id=f"create-{workflow_id}", action="create_workflow",
                                    args={"template": template, "workflow_id": workflow_id,
                                          **args}))

    def _eid(self) -> str:
        self._n += 1
        return f"e{self._n}"

    def _released(self, agent_id: str, m: SyncRelease) -> None:
        """A coalition member's meeting is over: queue the rest of its step."""
        key = (agent_id, m.workflow_id, m.step_id)
        a = self._teams.pop(key, None)
        if a is not None:
            self._met.append(key)
            self._todo.append((agent_id, a))

    def answers(self, a: Assign, agent_id: str) -> Iterator[Input]:
        """The inputs an agent sends to carry out ``a`` (a coalition member: first up to
        its meeting, and once released, the rest)."""
        common: dict[str, Any] = {
            "agent_id": agent_id, "workflow_id": a.workflow_id, "step_id": a.step_id,
            "attempt": a.attempt, "ts": self.now}
        if a.team:
            key = (agent_id, a.workflow_id, a.step_id)
            if key not in self._met:
                yield StepAccepted(event_id=self._eid(), **common)
                yield SyncArrival(event_id=self._eid(), **common)
                return
            self._met.remove(key)
        yield StepAccepted(event_id=self._eid(), **common)
        yield StepStarted(event_id=self._eid(), **common)
        for i in range(self.progress_steps):
            yield StepProgress(event_id=self._eid(), progress=(i + 1) / (self.progress_steps + 1),
                               **common)
        yield StepDone(event_id=self._eid(), outputs=self.outputs(a), **common)

    def run(self, limit: int = 10_000_000) -> int:
        """Answer commands until none is left; the number of inputs fed."""
        fed = 0
        while self._todo and fed < limit:
            agent_id, cmd = self._todo.popleft()
            for item in self.answers(cmd, agent_id):
                self.feed(item)
                fed += 1
            self._arrive_at_sync(cmd, agent_id)
        return fed

    def _arrive_at_sync(self, cmd: Assign, agent_id: str) -> None:
        """After its step is done, the agent arrives at the sync point the ``Assign`` names."""
        wf = self.core.workflow(cmd.workflow_id)
        if cmd.sync_point is None or wf is None or wf.steps[cmd.step_id].state != "done":
            return
        self.feed(SyncArrival(event_id=self._eid(), agent_id=agent_id, workflow_id=wf.id,
                              step_id=cmd.sync_point, ts=self.now))

    # --- one message at a time (tests) ------------------------------------------------

    def command(self, hub_action: str, /, **args: Any) -> list[Effect]:
        """Send a hub command with a fresh command id."""
        self._n += 1
        return self.feed(HubCommand(
            command_id=f"c{self._n}", action=hub_action, args=args,  # type: ignore[arg-type]
        ))

    def _common(self, workflow_id: str, step_id: str) -> dict[str, Any]:
        wf = self.core.workflow(workflow_id)
        assert wf is not None
        st = wf.steps[step_id]
        assert st.agent is not None, f"{workflow_id}.{step_id} is {st.state}, not assigned"
        return {"agent_id": st.agent, "workflow_id": workflow_id, "step_id": step_id,
                "attempt": st.attempt, "ts": self.now, "event_id": self._eid()}

    def accept(self, workflow_id: str, step_id: str) -> list[Effect]:
        """The assigned agent accepts the step."""
        return self.feed(StepAccepted(**self._common(workflow_id, step_id)))

    def start_step(self, workflow_id: str, step_id: str) -> list[Effect]:
        """The assigned agent starts the step."""
        return self.feed(StepStarted(**self._common(workflow_id, step_id)))

    def finish(self, workflow_id: str, step_id: str, **outputs: Any) -> list[Effect]:
        """The assigned agent accepts, starts (unless it did already) and finishes the step
        with ``outputs``."""
        wf = self.core.workflow(workflow_id)
        state = wf.steps[step_id].state if wf is not None else ""
        if state == "assigned":
            self.accept(workflow_id, step_id)
        if state in ("assigned", "preparing"):
            self.start_step(workflow_id, step_id)
        return self.feed(StepDone(outputs=outputs, **self._common(workflow_id, step_id)))

    def fail(self, workflow_id: str, step_id: str, error_type: str = "error",
             retryable: bool = True) -> list[Effect]:
        """The assigned agent reports the step failed."""
        return self.feed(StepFailed(error_type=error_type, retryable=retryable,
                                    **self._common(workflow_id, step_id)))

    def confirm(self, workflow_id: str, step_id: str, outcome: str = "done",
                reason: str = "") -> list[Effect]:
        """The agent holding the step answers the last ``Cancel`` or ``Pause`` it was sent
        for it: ``done`` (it stopped or paused) or ``refused``."""
        for effect in reversed(self.effects):
            msg = effect.message if isinstance(effect, Publish) else None
            if isinstance(msg, Cancel | Pause) and (msg.workflow_id, msg.step_id) == (
                    workflow_id, step_id):
                agent_id = effect.topic.rsplit("/", 2)[1]  # type: ignore[union-attr]
                return self.feed(CommandAck(
                    event_id=self._eid(), agent_id=agent_id, ts=self.now,
                    command_id=msg.command_id, outcome=outcome,  # type: ignore[arg-type]
                    reason=reason))
        raise AssertionError(f"no cancel or pause was sent for {workflow_id}.{step_id}")

    def at(self, now: float) -> None:
        """Move virtual time to ``now`` (the next input comes one tick later)."""
        self.now = now - self.tick
