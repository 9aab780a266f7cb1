"""The edge's half of end-to-end delivery: event acks and the command outbox (pure)."""

from __future__ import annotations

from edge_runtime.shell import Delivery
from topics import Assign, decode_agent_command, encode


def _assign(command_id: str) -> bytes:
    return encode(Assign(command_id=command_id, workflow_id="w", step_id="s", kind="robot"))


def _sent(d: Delivery, agent: str, command_id: str, now: float) -> bytes:
    key, _entry = d.sent(agent, command_id, f"fleetflow/v1/f/agent/{agent}/cmd",
                         _assign(command_id), now)
    return key


def test_events_taken_and_refused_are_acknowledged_per_agent() -> None:
    """One EventAck per agent lists what the batch took and what it refused."""
    d = Delivery("f")
    d.took("a1", "e1")
    d.took("a2", "x1")
    d.took("a1", "e2")
    d.refused("a1", "e3", "stale: reassigned")
    acks = {topic: decode_agent_command(payload) for topic, payload in d.event_acks(5.0)}
    a1 = acks["fleetflow/v1/f/agent/a1/cmd"]
    assert a1.type == "event_ack"
    assert a1.event_ids == ["e1", "e2"] and a1.refused == {"e3": "stale: reassigned"}
    assert acks["fleetflow/v1/f/agent/a2/cmd"].event_ids == ["x1"]
    assert d.event_acks(6.0) == []


def test_ack_ids_differ_across_incarnations() -> None:
    """A restarted edge's EventAcks never reuse an id an agent may have seen."""
    first, second = Delivery("f", incarnation="10"), Delivery("f", incarnation="2a")
    first.took("a", "e")
    second.took("a", "e")
    [(_, p1)] = first.event_acks(0.0)
    [(_, p2)] = second.event_acks(0.0)
    assert decode_agent_command(p1).command_id != decode_agent_command(p2).command_id


def test_unacknowledged_command_is_resent_with_backoff() -> None:
    """A command is resent after 1 s, then 2 s, 4 s … until acknowledged."""
    d = Delivery("f")
    _sent(d, "a1", "c1", 100.0)
    assert d.due(100.5) == []
    resent = [now for now in (101.0, 102.0, 103.0, 105.0, 109.0) if d.due(now)]
    assert resent == [101.0, 103.0, 109.0]
    assert d.acknowledged("a1", "c1") is not None
    assert d.due(200.0) == [] and d.outstanding == 0


def test_repeated_acknowledgement_changes_nothing() -> None:
    """A second CommandAck for the same command finds nothing to delete."""
    d = Delivery("f")
    _sent(d, "a1", "c1", 0.0)
    assert d.acknowledged("a1", "c1") is not None
    assert d.acknowledged("a1", "c1") is None


def test_agent_back_online_gets_its_commands_at_once() -> None:
    """When an agent reconnects, every command waiting for it is due now."""
    d = Delivery("f")
    _sent(d, "a1", "c1", 0.0)
    _sent(d, "a1", "c2", 0.0)
    _sent(d, "a2", "c3", 0.0)
    d.due(1.0), d.due(3.0), d.due(7.0)  # backed off to 8 s
    d.online("a1", 7.5)
    topics = [t for t, _ in d.due(7.5)]
    assert topics == ["fleetflow/v1/f/agent/a1/cmd"] * 2


def test_restarted_edge_resends_its_whole_outbox() -> None:
    """The outbox entries committed to the store are all due at once after a restart."""
    before = Delivery("f")
    entries = [before.sent("a1", f"c{i}", "fleetflow/v1/f/agent/a1/cmd", _assign(f"c{i}"), 0.0)
               for i in range(3)]
    after = Delivery("f")
    after.load(entries, 50.0)
    assert [decode_agent_command(p).command_id for _, p in after.due(50.0)] == ["c0", "c1", "c2"]
    assert after.outstanding == 3
