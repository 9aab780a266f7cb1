"""Agents and resources lent to another facility (``lend_agent``, ``reclaim_agent``,
``lend_resource``, ``reclaim_resource``, ``release_booking``) in the edge core."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runtime.core import Append, Core, CoreConfig, CoreError, Effect, Event, Publish
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet
from tests.test_core_replay import assert_replays_identically
from topics import Cancel

ONE = load_template({"name": "one", "steps": [{"id": "s", "kind": "robot"}]})
DOCK = load_template({"name": "dock", "steps": [
    {"id": "s", "kind": "robot", "resources": ["dock1"]}]})
ALL = {t.name: t for t in (ONE, DOCK)}


def _fleet(*robots: str) -> ScriptedFleet:
    fl = ScriptedFleet(Core("fa", ALL))
    for r in robots:
        fl.agent(r, "robot", [])
    return fl


def _reply(fx: list[Effect]) -> dict[str, Any]:
    [reply] = [e.event.data for e in fx if isinstance(e, Append)
               and e.event.kind == "command_reply"]
    return reply["result"]  # type: ignore[no-any-return]


def _kinds(fx: list[Effect]) -> list[str]:
    return [e.event.kind for e in fx if isinstance(e, Append)]


def _step(fl: ScriptedFleet, wid: str) -> tuple[str, str | None]:
    wf = fl.workflow(wid)
    assert wf is not None
    return wf.steps["s"].state, wf.steps["s"].agent


def _refused(fl: ScriptedFleet, action: str, match: str, **args: Any) -> None:
    """The command is refused with ``match`` in its message and changes nothing."""
    before = fl.core.snapshot()
    with pytest.raises(CoreError, match=match):
        fl.command(action, **args)
    assert fl.core.snapshot() == before


def _replays(fl: ScriptedFleet, config: CoreConfig | None = None) -> None:
    events: list[Event] = [e.event for e in fl.effects if isinstance(e, Append)]
    assert_replays_identically(lambda: Core("fa", ALL, config=config or CoreConfig()),
                               fl.core, fl.fed, events)


def test_lent_agent_gets_no_new_work() -> None:
    """A lent agent is left out of allocation: the step waits although the agent is idle."""
    fl = _fleet("r1")
    fx = fl.command("lend_agent", agent_id="r1", to="fb")
    fl.create("one", "w1")
    assert _kinds(fx)[0] == "agent_lent"
    assert _reply(fx) == {"agent": "r1", "lent_to": "fb", "free": True, "busy_with": None}
    assert _step(fl, "w1") == ("allocating", None)
    [view] = [a for a in fl.core.agents().values()]
    assert (view.lent_to, view.available) == ("fb", False)


def test_reclaim_brings_the_agent_back() -> None:
    """Reclaiming the agent gives it the waiting step at once."""
    fl = _fleet("r1")
    fl.command("lend_agent", agent_id="r1", to="fb")
    fl.create("one", "w1")
    fx = fl.command("reclaim_agent", agent_id="r1")
    assert _kinds(fx)[:2] == ["agent_reclaimed", "step_assigned"]
    assert _step(fl, "w1") == ("assigned", "r1")
    _replays(fl)


def test_lending_a_busy_agent_lets_its_step_finish() -> None:
    """The step an agent holds runs to its end; the reply says it is not free yet; the
    next step waits."""
    fl = _fleet("r1")
    fl.create("one", "w1")
    reply = _reply(fl.command("lend_agent", agent_id="r1", to="fb"))
    fl.create("one", "w2")
    fl.finish("w1", "s")
    assert (reply["free"], reply["busy_with"]) == (False, "w1/s")
    assert _step(fl, "w1")[0] == "done"
    assert _step(fl, "w2") == ("allocating", None)


def test_work_queued_on_a_lent_agent_goes_back_to_the_queue() -> None:
    """With work queues, steps queued on a busy agent that is lent wait in the facility
    queue again, and another agent takes them."""
    fl = ScriptedFleet(Core("fa", ALL, config=CoreConfig(max_queued_per_agent=2)))
    fl.agent("r1", "robot", [])
    fl.create("one", "w1")
    fl.create("one", "w2")
    assert fl.core.state.agents["r1"].queued == [("w2", "s")]
    fx = fl.command("lend_agent", agent_id="r1", to="fb")
    fl.agent("r2", "robot", [])
    assert _kinds(fx)[:2] == ["agent_lent", "step_unqueued"]
    assert _step(fl, "w2") == ("assigned", "r2")
    _replays(fl, CoreConfig(max_queued_per_agent=2))


def test_lend_agent_is_idempotent_and_checked() -> None:
    """A repeat changes nothing; unknown agent, own facility and a second borrower are
    refused with a clear sentence."""
    fl = _fleet("r1")
    fl.command("lend_agent", agent_id="r1", to="fb")
    fx = fl.command("lend_agent", agent_id="r1", to="fb")
    assert _kinds(fx) == ["command_reply"]
    _refused(fl, "lend_agent", "no agent 'ghost'", agent_id="ghost", to="fb")
    _refused(fl, "lend_agent", "it is this facility", agent_id="r1", to="fa")
    _refused(fl, "lend_agent", "lent to fb; reclaim it first", agent_id="r1", to="fc")
    _refused(fl, "lend_agent", "args", agent="r1", to="fc")


def test_lent_resource_makes_steps_wait() -> None:
    """A step needing a lent resource waits as if it were held, until it is reclaimed."""
    fl = _fleet("r1")
    fx = fl.command("lend_resource", resource="dock1", to="fb")
    fl.create("dock", "w1")
    assert _reply(fx) == {"resource": "dock1", "lent_to": "fb"}
    assert _step(fl, "w1") == ("allocating", None)
    assert fl.core.state.lent_resources == {"dock1": "fb"}
    fx = fl.command("reclaim_resource", resource="dock1")
    assert _kinds(fx)[:2] == ["resource_reclaimed", "step_assigned"]
    _replays(fl)


def test_lending_a_held_resource_is_refused() -> None:
    """A resource a local step holds now cannot be lent (the holder is named); an unknown
    one neither."""
    fl = _fleet("r1")
    fl.create("dock", "w1")
    _refused(fl, "lend_resource", "held by w1/s", resource="dock1", to="fb")
    _refused(fl, "lend_resource", "no resource 'dock9'", resource="dock9", to="fb")


def test_release_booking_reassigns_the_step() -> None:
    """The hub's resolution lends the agent away and cancels this facility's step on it;
    once the agent confirms, the step goes to another agent."""
    fl = _fleet("r1", "r2")
    fl.command("lend_agent", agent_id="r2", to="fc")  # keep r2 out at first
    fl.create("one", "w1")
    fx = fl.command("release_booking", agent_id="r1", workflow_id="w1", step_id="s", to="fb")
    cancels = [e for e in fx if isinstance(e, Publish) and isinstance(e.message, Cancel)]
    assert _kinds(fx)[:2] == ["agent_lent", "step_cancelling"]
    assert len(cancels) == 1 and cancels[0].topic.endswith("/r1/cmd")
    assert _reply(fx)["released"] is True
    fl.confirm("w1", "s")
    assert _step(fl, "w1") == ("allocating", None)
    fl.command("reclaim_agent", agent_id="r2")
    assert _step(fl, "w1") == ("assigned", "r2")
    _replays(fl)


def test_release_booking_of_a_resource() -> None:
    """Releasing a resource booking lends it away and withdraws the step holding it; the
    step then waits for the resource."""
    fl = _fleet("r1")
    fl.create("dock", "w1")
    fx = fl.command("release_booking", resource="dock1", workflow_id="w1", step_id="s",
                    to="fb")
    assert _kinds(fx)[:2] == ["resource_lent", "step_cancelling"]
    fl.confirm("w1", "s")
    assert _step(fl, "w1") == ("allocating", None)
    assert fl.core.state.holds == {}
    _replays(fl)


def test_release_booking_needs_one_thing() -> None:
    """Naming both (or neither) an agent and a resource is refused."""
    fl = _fleet("r1")
    fl.create("one", "w1")
    _refused(fl, "release_booking", "exactly one", workflow_id="w1", step_id="s", to="fb")
    _refused(fl, "release_booking", "exactly one", agent_id="r1", resource="dock1",
             workflow_id="w1", step_id="s", to="fb")


def test_snapshot_keeps_loans() -> None:
    """A snapshot restores lent agents and resources (the agent stays out of the idle
    list)."""
    fl = _fleet("r1")
    fl.command("lend_agent", agent_id="r1", to="fb")
    fl.command("lend_resource", resource="dock1", to="fc")
    restored = Core.restore(fl.core.snapshot(), "fa", ALL)
    assert restored.state.agents["r1"].lent_to == "fb"
    assert restored.state.idle.get("robot") == []
    assert restored.state.lent_resources == {"dock1": "fc"}
    _replays(fl)
