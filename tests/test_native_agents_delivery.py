"""The agents' half of delivery: outbox, acknowledgements and resends (virtual time)."""

from __future__ import annotations

from typing import Any

from agents_sim.native import AgentBehaviour, AgentSpec, Outbox, Outgoing
from topics import (
    Assign,
    Award,
    Cancel,
    Cfp,
    CommandAck,
    EventAck,
    Message,
    Pause,
    Resume,
    SyncRelease,
)

QUIET = 1000.0
"""A state period long enough that no state message gets in the way."""


def agent(**kw: Any) -> AgentBehaviour:
    return AgentBehaviour(AgentSpec("r1", state_period_s=QUIET, **kw))


def assign(step: str = "s1", cid: str = "c1", duration: float = 100.0) -> Assign:
    return Assign(command_id=cid, workflow_id="wf", step_id=step, kind="robot",
                  params={"duration_s": duration})


def sent(out: list[Outgoing]) -> list[tuple[str, str]]:
    """(type, event id) of every event in ``out``."""
    return [(o.message.type, o.message.event_id)  # type: ignore[attr-defined]
            for o in out if o.channel == "event"]


def acks(out: list[Outgoing]) -> list[CommandAck]:
    return [o.message for o in out if isinstance(o.message, CommandAck)]


def resend_times(a: AgentBehaviour, end: float) -> list[float]:
    """When ``tick`` sends something, following ``next_wakeup``, up to ``end`` (no acks)."""
    times = []
    while (at := a.next_wakeup()) is not None and at <= end:
        if sent(a.tick(at)):
            times.append(at)
    return times


def ack(a: AgentBehaviour, now: float, *ids: str, refused: dict[str, str] | None = None
        ) -> list[Outgoing]:
    return a.on_command(EventAck(command_id=f"k{now}", event_ids=list(ids),
                                 refused=refused or {}), now)


def test_unacknowledged_event_is_resent_after_1s_then_doubling_to_30s() -> None:
    """An event nobody acknowledges goes again at 1, 3, 7, 15, 31 s, then every 30 s."""
    a = agent()
    a.arrive("wf", "handover", 0.0)
    assert resend_times(a, 130.0) == [1.0, 3.0, 7.0, 15.0, 31.0, 61.0, 91.0, 121.0]


def test_resends_repeat_the_same_events_in_sending_order() -> None:
    """A resend is the same message (same event id), oldest first."""
    a = agent(progress_steps=0)
    first = sent(a.on_command(assign(), 0.0))
    assert [t for t, _ in first] == ["command_ack", "step_accepted", "step_started"]
    assert sent(a.tick(1.0)) == first


def test_next_wakeup_accounts_for_resends() -> None:
    """An idle agent with an unacknowledged event wakes up for its resend."""
    a = agent()
    a.tick(0.0)  # the first state
    a.arrive("wf", "handover", 0.0)
    assert a.next_wakeup() == 1.0


def test_acknowledged_events_are_not_resent() -> None:
    """Events an EventAck names leave the outbox and are never sent again."""
    a = agent(progress_steps=0)
    ids = [i for _, i in sent(a.on_command(assign(), 0.0))]
    ack(a, 0.5, *ids)
    assert len(a.delivery.outbox) == 0 and a.delivery.stats.acked == 3
    assert a.next_wakeup() == 100.0  # only the step's end is ahead
    assert sent(a.tick(50.0)) == []


def test_event_ack_gets_no_command_ack() -> None:
    """An EventAck is not acknowledged itself, and a repeated one changes nothing."""
    a = agent()
    (_, event_id), = sent(a.arrive("wf", "handover", 0.0))
    assert sent(ack(a, 0.1, event_id)) == [] and sent(ack(a, 0.2, event_id)) == []
    assert a.delivery.stats.acked == 1


def test_refused_event_is_dropped_and_its_reason_kept() -> None:
    """An event the edge refuses for good is dropped, counted, and why is remembered."""
    a = agent()
    (_, event_id), = sent(a.arrive("wf", "handover", 0.0))
    ack(a, 0.5, refused={event_id: "stale"})
    assert len(a.delivery.outbox) == 0 and a.delivery.stats.refused == 1
    assert a.delivery.refused == {event_id: "stale"}
    assert resend_times(a, 100.0) == []


def test_edge_online_resends_everything_at_once() -> None:
    """on_edge_online sends every unacknowledged event now, in order, and restarts the
    schedule at 1 s."""
    a = agent(progress_steps=0)
    first = sent(a.on_command(assign(), 0.0))
    a.tick(1.0)
    a.tick(3.0)  # two resends: the next would be at 7 s
    assert sent(a.on_edge_online(4.0)) == first
    assert a.next_wakeup() == 5.0


def test_edge_online_with_nothing_pending_sends_nothing() -> None:
    """An edge coming online finds an agent with an empty outbox quiet."""
    assert sent(agent().on_edge_online(1.0)) == []


def test_every_command_is_acknowledged_once_applied() -> None:
    """Assign, cfp, award, pause, resume, cancel and sync_release each get a done ack with
    their command id, before the events they cause."""
    a = agent(capabilities=("pick",))
    commands: list[Message] = [
        assign(),
        Cfp(command_id="c2", cfp_id="k", workflow_id="wf", step_id="s2",
            capabilities=["pick"], deadline_ts=9.0),
        Award(command_id="c3", cfp_id="k", workflow_id="wf", step_id="s2"),
        Pause(command_id="c4"),
        Resume(command_id="c5"),
        Cancel(command_id="c6", workflow_id="wf", step_id="s1"),
    ]
    for i, cmd in enumerate(commands):
        out = a.on_command(cmd, float(i))
        ack(a, float(i), *a.delivery.outbox.ids())  # so that no resend comes first
        assert isinstance(out[0].message, CommandAck), cmd
        assert (out[0].message.command_id, out[0].message.outcome) == (cmd.command_id, "done")  # type: ignore[attr-defined]
    a.arrive("wf", "meet", 10.0)
    release = a.on_command(SyncRelease(command_id="c7", workflow_id="wf", step_id="meet"), 11.0)
    assert [(k.command_id, k.outcome) for k in acks(release)] == [("c7", "done")]


def test_commands_for_what_the_agent_does_not_hold_are_refused() -> None:
    """Cancel, pause or resume of a step the agent does not hold, and a release of a
    barrier it does not wait at, are refused with a reason."""
    a = agent()
    for cmd in (Cancel(command_id="x1", workflow_id="wf", step_id="nope"),
                Pause(command_id="x2", workflow_id="wf", step_id="nope"),
                Resume(command_id="x3"),
                SyncRelease(command_id="x4", workflow_id="wf", step_id="meet")):
        (k,) = acks(a.on_command(cmd, 1.0))
        assert k.outcome == "refused" and k.reason.split(":")[0] in ("not_held", "not_waiting")


def test_duplicate_command_is_reacked_not_reapplied() -> None:
    """A redelivered command is acknowledged again — with the pending ack while that waits,
    a new ack with the same outcome once it was taken — and never applied twice."""
    a = agent(progress_steps=0)
    first = sent(a.on_command(assign(), 0.0))
    assert sent(a.on_command(assign(), 0.5)) == first[:1]  # the same ack, nothing else
    ack(a, 0.6, *(i for _, i in first))
    (again,) = acks(a.on_command(assign(), 0.7))
    assert again.command_id == "c1" and again.outcome == "done"
    assert again.event_id != first[0][1]
    assert a.queue == [] and a.delivery.stats.sent == 4


def test_duplicate_of_a_refused_command_is_refused_again() -> None:
    """The second copy of a refused command gets the same refusal and reason."""
    a = agent()
    cancel = Cancel(command_id="x", workflow_id="wf", step_id="nope")
    (k1,) = acks(a.on_command(cancel, 0.0))
    ack(a, 0.1, k1.event_id)
    (k2,) = acks(a.on_command(cancel, 0.2))
    assert (k2.outcome, k2.reason) == (k1.outcome, k1.reason) == ("refused", k1.reason)


def test_full_outbox_drops_the_oldest_event() -> None:
    """Past outbox_limit the oldest unacknowledged event is dropped and counted."""
    a = agent(outbox_limit=3)
    ids = [sent(a.arrive("wf", f"p{i}", float(i)))[0][1] for i in range(5)]
    assert a.delivery.outbox.ids() == ids[2:] and a.delivery.stats.dropped == 2


def test_incarnation_keeps_event_ids_of_two_runs_apart() -> None:
    """Two runs of the same agent with different incarnations never share an event id."""
    one = AgentBehaviour(AgentSpec("r1"), incarnation="a1")
    two = AgentBehaviour(AgentSpec("r1"), incarnation="b2")
    assert sent(one.arrive("wf", "p", 0.0))[0][1] == "r1-a1-1"
    assert sent(one.arrive("wf", "p", 0.0)) != sent(two.arrive("wf", "p", 0.0))


def test_dead_agent_resends_nothing() -> None:
    """Once dead, the agent neither resends nor reacts to the edge coming online."""
    a = agent()
    a.arrive("wf", "p", 0.0)
    a.dead = True
    assert a.tick(5.0) == [] and a.on_edge_online(5.0) == [] and a.next_wakeup() is None


def test_outbox_restarts_the_schedule_of_a_key_kept_again() -> None:
    """Keeping a key again replaces its value and schedules it 1 s from then."""
    box: Outbox[str, str] = Outbox()
    box.keep("a", "v1", 0.0)
    box.keep("b", "w", 0.5)
    box.keep("a", "v2", 0.8)
    assert box.due(1.5) == ["w"] and box.due(1.8) == ["v2"] and box.ids() == ["b", "a"]


def test_outbox_heap_stays_small_when_everything_is_acked() -> None:
    """Thousands of kept-and-acked entries leave no schedule behind."""
    box: Outbox[int, int] = Outbox()
    for i in range(5000):
        box.keep(i, i, i * 0.001)
        box.ack(i)
    assert len(box) == 0 and box.next_due() is None and box.due(1e9) == []
