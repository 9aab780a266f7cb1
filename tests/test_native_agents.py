"""The sans-IO behaviour of simulated native agents (no broker, virtual time)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agents_sim.native import AgentBehaviour, AgentSpec, Failure, Outgoing, ai_outputs
from topics import (
    AgentConn,
    AgentState,
    Assign,
    Bid,
    Cancel,
    Cfp,
    EventAck,
    Message,
    Pause,
    Resume,
    StepDone,
    StepFailed,
    SyncRelease,
    decode_agent_conn,
    decode_agent_event,
    decode_agent_state,
    encode,
)


def assign(step: str = "s1", cid: str = "c1", duration: float = 4.0, **kw: Any) -> Assign:
    kw.setdefault("params", {"duration_s": duration})
    return Assign(command_id=cid, workflow_id="wf", step_id=step, kind="robot", **kw)


def ack_all(agent: AgentBehaviour, now: float) -> None:
    """Play an edge that acknowledges every event the agent has sent."""
    ids = agent.delivery.outbox.ids()
    if ids:
        agent.on_command(EventAck(command_id=f"k{now}", event_ids=ids), now)


def run_until(agent: AgentBehaviour, end: float, start: float = 0.0) -> list[tuple[float, Message]]:
    """Tick the agent at each of its wakeups up to ``end``, acknowledging every event as an
    edge does (so nothing is resent); return (time, event) pairs."""
    out: list[tuple[float, Message]] = []
    now = start
    ack_all(agent, now)
    while True:
        nxt = agent.next_wakeup()
        if nxt is None or nxt > end:
            return out
        now = max(now, nxt)
        out += [(now, o.message) for o in agent.tick(now) if o.channel == "event"]
        ack_all(agent, now)


def events(out: list[Outgoing]) -> list[Outgoing]:
    """The events of ``out`` besides command acknowledgements."""
    return [o for o in out if o.channel == "event" and o.message.type != "command_ack"]  # type: ignore[attr-defined]


def types(events: list[tuple[float, Message]] | list[Outgoing]) -> list[str]:
    msgs = [e.message if isinstance(e, Outgoing) else e[1] for e in events]
    return [str(getattr(m, "type", "")) for m in msgs]


def test_assign_runs_the_full_event_sequence() -> None:
    """An assigned step is accepted, started, progresses three times and is done on time."""
    agent = AgentBehaviour(AgentSpec("r1", progress_steps=3))
    first = agent.on_command(assign(duration=4.0), 0.0)
    assert types(events(first)) == ["step_accepted", "step_started"]
    later = run_until(agent, 10.0)
    assert types(later) == ["step_progress"] * 3 + ["step_done"]
    assert [t for t, _ in later] == [1.0, 2.0, 3.0, 4.0]
    progress = [m.progress for _, m in later[:3]]  # type: ignore[attr-defined]
    assert progress == [0.25, 0.5, 0.75]
    assert agent.completed == ["wf/s1"]


def test_events_carry_unique_ids_and_the_assign_attempt() -> None:
    """Every event has a fresh event id and echoes workflow, step and attempt."""
    agent = AgentBehaviour(AgentSpec("r1"))
    out = [o.message for o in events(agent.on_command(assign(attempt=3), 0.0))]
    out += [m for _, m in run_until(agent, 10.0)]
    ids = [m.event_id for m in out]  # type: ignore[attr-defined]
    assert len(set(ids)) == len(ids)
    assert {(m.workflow_id, m.step_id, m.attempt) for m in out} == {  # type: ignore[attr-defined]
        ("wf", "s1", 3)}


def test_duplicate_command_id_changes_nothing() -> None:
    """A redelivered Assign (same command id) is acknowledged again but not applied."""
    agent = AgentBehaviour(AgentSpec("r1"))
    agent.on_command(assign(), 0.0)
    assert types(agent.on_command(assign(), 0.1)) == ["command_ack"]
    assert agent.queue == []


def test_humans_take_longer_than_robots_and_ai_is_fastest() -> None:
    """Without a duration parameter, a person's step outlasts a robot's, an AI's is shortest."""
    ends = {}
    for kind in ("robot", "human", "ai"):
        agent = AgentBehaviour(AgentSpec(f"{kind}-1", kind=kind))  # type: ignore[arg-type]
        agent.on_command(Assign(command_id="c", workflow_id="w", step_id="s", kind=kind), 0.0)  # type: ignore[arg-type]
        ends[kind] = run_until(agent, 100.0)[-1][0]
    assert ends["ai"] < ends["robot"] < ends["human"]


def test_ai_outputs_come_from_the_seed() -> None:
    """An AI agent's step_done outputs are the seeded defect/score pair."""
    agent = AgentBehaviour(AgentSpec("ai-1", kind="ai", seed=7))
    agent.on_command(Assign(command_id="c", workflow_id="wf", step_id="inspect", kind="ai"), 0.0)
    done = run_until(agent, 10.0)[-1][1]
    assert isinstance(done, StepDone)
    assert done.outputs == ai_outputs(7, "ai-1", "wf", "inspect", 1)
    assert set(done.outputs) == {"defect", "score"}


@given(st.integers(0, 2**32), st.text("abcxyz", min_size=1, max_size=8))
def test_ai_outputs_are_deterministic_and_in_range(seed: int, step: str) -> None:
    """Same inputs, same outputs; the score lies in [0.5, 1] and defect means score < 0.6."""
    a = ai_outputs(seed, "ai", "wf", step, 1)
    assert a == ai_outputs(seed, "ai", "wf", step, 1)
    assert 0.5 <= a["score"] <= 1.0
    assert a["defect"] == (a["score"] < 0.6)


def test_pause_holds_the_step_and_resume_shifts_it() -> None:
    """A paused step sends nothing; after resume it finishes late by the time it was held."""
    agent = AgentBehaviour(AgentSpec("r1", progress_steps=0))
    agent.on_command(assign(duration=4.0), 0.0)
    agent.on_command(Pause(command_id="p", workflow_id="wf", step_id="s1"), 1.0)
    assert agent.state(2.0).status == "paused"
    assert run_until(agent, 50.0) == []
    agent.on_command(Resume(command_id="r", workflow_id="wf", step_id="s1"), 11.0)
    (at, done), = run_until(agent, 50.0, start=11.0)
    assert isinstance(done, StepDone) and at == 14.0


def test_cancel_abandons_the_step_silently() -> None:
    """After Cancel the agent is idle and never reports the step done."""
    agent = AgentBehaviour(AgentSpec("r1"))
    agent.on_command(assign(), 0.0)
    agent.on_command(Cancel(command_id="x", workflow_id="wf", step_id="s1"), 1.0)
    assert run_until(agent, 50.0) == []
    assert agent.step is None and agent.state(1.0).status == "idle"


def test_cancel_for_another_step_is_ignored() -> None:
    """Cancel naming a different step leaves the current one running."""
    agent = AgentBehaviour(AgentSpec("r1"))
    agent.on_command(assign(), 0.0)
    agent.on_command(Cancel(command_id="x", workflow_id="wf", step_id="other"), 1.0)
    assert types(run_until(agent, 50.0))[-1] == "step_done"


def test_assign_while_busy_queues_and_runs_next() -> None:
    """A second Assign is accepted at once and started when the first is done."""
    agent = AgentBehaviour(AgentSpec("r1", progress_steps=0))
    agent.on_command(assign("a", "c1", 2.0), 0.0)
    out = agent.on_command(assign("b", "c2", 2.0), 0.5)
    assert types(events(out)) == ["step_accepted"]
    later = run_until(agent, 10.0)
    assert [(t, getattr(m, "step_id", ""), m.type) for t, m in later] == [  # type: ignore[attr-defined]
        (2.0, "a", "step_done"), (2.0, "b", "step_started"), (4.0, "b", "step_done")]


def test_sync_arrival_is_repeated_only_as_a_safety_net() -> None:
    """At a sync point the agent re-sends its arrival every sync_retry_s until the
    SyncRelease comes, and then stops."""
    agent = AgentBehaviour(AgentSpec("r1", sync_retry_s=2.0, state_period_s=100.0))
    first = agent.arrive("wf", "handover", 0.0)
    assert types(first) == ["sync_arrival"]
    assert first[0].message.step_id == "handover"  # type: ignore[attr-defined]
    again = run_until(agent, 5.0)
    assert [(t, m.type) for t, m in again] == [  # type: ignore[attr-defined]
        (2.0, "sync_arrival"), (4.0, "sync_arrival")]
    agent.on_command(SyncRelease(command_id="go", workflow_id="wf", step_id="handover"), 5.0)
    assert run_until(agent, 50.0, start=5.0) == [] and agent.waiting == {}


def test_default_agent_arrives_once_and_waits_quietly() -> None:
    """By default an acknowledged arrival is never repeated while the agent waits."""
    agent = AgentBehaviour(AgentSpec("r1", state_period_s=100.0))
    assert types(agent.arrive("wf", "handover", 0.0)) == ["sync_arrival"]
    assert run_until(agent, 99.0) == [] and ("wf", "handover") in agent.waiting


def test_no_retry_at_all_when_sync_retry_is_none() -> None:
    """sync_retry_s=None: the arrival is sent once, the agent still waits for the release."""
    agent = AgentBehaviour(AgentSpec("r1", sync_retry_s=None, state_period_s=100.0))
    agent.arrive("wf", "handover", 0.0)
    assert run_until(agent, 99.0) == [] and ("wf", "handover") in agent.waiting


def test_cancel_naming_the_sync_point_ends_the_wait() -> None:
    """A Cancel for the barrier (the workflow ended) dismisses the waiting agent."""
    agent = AgentBehaviour(AgentSpec("r1", state_period_s=100.0))
    agent.arrive("wf", "handover", 0.0)
    agent.on_command(Cancel(command_id="x", workflow_id="wf", step_id="handover"), 1.0)
    assert agent.waiting == {}


def test_step_with_a_sync_point_arrives_after_done() -> None:
    """An Assign naming a sync_point ends with step_done then sync_arrival at that step."""
    agent = AgentBehaviour(AgentSpec("r1", progress_steps=0))
    agent.on_command(assign(sync_point="handover", params={"duration_s": 1.0}), 0.0)
    done, arrival = run_until(agent, 1.5)
    assert (done[1].type, arrival[1].type) == ("step_done", "sync_arrival")  # type: ignore[attr-defined]
    assert arrival[1].step_id == "handover"  # type: ignore[attr-defined]


def test_params_no_longer_smuggle_a_sync_point() -> None:
    """A sync_point hidden in params is ignored: only Assign.sync_point counts."""
    agent = AgentBehaviour(AgentSpec("r1", progress_steps=0))
    agent.on_command(assign(params={"duration_s": 1.0, "sync_point": "handover"}), 0.0)
    assert types(run_until(agent, 5.0)) == ["step_done"]


def test_cfp_gets_a_bid_only_from_capable_agents() -> None:
    """An agent bids on a CFP it has the capabilities for, and stays silent otherwise."""
    cfp = Cfp(command_id="c", cfp_id="cfp1", workflow_id="wf", step_id="s",
              capabilities=["pick"], deadline_ts=5.0)
    able = AgentBehaviour(AgentSpec("r1", capabilities=("pick", "transport")))
    unable = AgentBehaviour(AgentSpec("r2", capabilities=("transport",)))
    bids = [o.message for o in events(able.on_command(cfp, 0.0))]
    assert len(bids) == 1 and isinstance(bids[0], Bid) and bids[0].cfp_id == "cfp1"
    assert events(unable.on_command(cfp, 0.0)) == []


def test_busy_agents_bid_higher() -> None:
    """Work in hand raises an agent's bid, so the auction prefers idle agents."""
    spec = AgentSpec("r1", capabilities=("pick",))
    idle, busy = AgentBehaviour(spec), AgentBehaviour(spec)
    busy.on_command(assign(), 0.0)
    cfp = Cfp(command_id="c", cfp_id="k", workflow_id="w", step_id="s", capabilities=["pick"],
              deadline_ts=9.0)
    cost = [next(o.message.cost for o in events(a.on_command(cfp, 0.0)))  # type: ignore[attr-defined]
                 for a in (idle, busy)]
    assert cost[0] < cost[1]


def test_injected_failure_reports_step_failed() -> None:
    """A 'fail' fault makes the step fail with the configured error type, once."""
    spec = AgentSpec("r1", failures=(Failure("s1", error_type="gripper", times=1,
                                             retryable=False),))
    agent = AgentBehaviour(spec)
    agent.on_command(assign(), 0.0)
    failed = run_until(agent, 50.0)[-1][1]
    assert isinstance(failed, StepFailed)
    assert (failed.error_type, failed.retryable) == ("gripper", False)
    agent.on_command(assign(cid="c2", attempt=2), 60.0)
    assert types(run_until(agent, 100.0, start=60.0))[-1] == "step_done"


def test_die_fault_silences_the_agent() -> None:
    """A 'die' fault stops every message mid-step and marks the agent dead."""
    agent = AgentBehaviour(AgentSpec("r1", failures=(Failure("s1", mode="die", at=0.5),)))
    agent.on_command(assign(duration=4.0), 0.0)
    events = run_until(agent, 50.0)
    assert all(t < 2.0 for t, _ in events) and "step_done" not in types(events)
    assert agent.dead and agent.next_wakeup() is None and agent.tick(60.0) == []


def test_states_stream_every_period() -> None:
    """An idle agent sends a state every period, and the hello carries a retained conn."""
    agent = AgentBehaviour(AgentSpec("r1", state_period_s=0.5, capabilities=("pick",)))
    hello = agent.hello(0.0)
    assert isinstance(hello[0].message, AgentConn) and hello[0].retain and hello[0].message.online
    times = []
    now = 0.0
    while now < 2.0:
        now = agent.next_wakeup() or 99.0
        times += [now for o in agent.tick(now) if isinstance(o.message, AgentState)]
    assert times == [0.5, 1.0, 1.5, 2.0]


def test_every_outgoing_message_encodes() -> None:
    """Whatever an agent sends, hello to step_done, decodes back on its channel."""
    agent = AgentBehaviour(AgentSpec("ai-1", kind="ai", capabilities=("inspect",)))
    out = agent.hello(0.0) + agent.on_command(
        Assign(command_id="c", workflow_id="wf", step_id="s", kind="ai"), 0.0)
    while (now := agent.next_wakeup()) is not None and "step_done" not in types(out):
        out += agent.tick(now)
    decoders = {"conn": decode_agent_conn, "state": decode_agent_state,
                "event": decode_agent_event}
    assert {o.channel for o in out} == set(decoders) and "step_done" in types(out)
    for o in out:
        assert decoders[o.channel](encode(o.message)) == o.message


def test_declared_outputs_are_reported() -> None:
    """Every output the Assign names appears in step_done, next to the usual ones."""
    agent = AgentBehaviour(AgentSpec("p1", kind="human", progress_steps=0))
    agent.on_command(assign("pick", outputs=["tote_id", "weight"],
                            params={"duration_s": 1.0, "outputs": ["ignored"]}), 0.0)
    done = run_until(agent, 5.0)[-1][1]
    assert isinstance(done, StepDone)
    assert set(done.outputs) == {"tote_id", "weight", "agent"}
