"""Per-workflow coordination: the protocol (template default, chosen at creation, changed by
``set_coordination``) and the set of agents allowed to take part in a workflow."""

from __future__ import annotations

import pytest

from edge_runtime.core import (
    Append,
    BadArguments,
    Core,
    CoreConfig,
    CoreError,
    Effect,
    UnknownEntity,
)
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet

ONE = load_template({"name": "one", "steps": [{"id": "s", "kind": "robot"}]})
BID = load_template({"name": "bid", "coordination": "auction_based",
                     "steps": [{"id": "s", "kind": "robot"}]})


def _fleet() -> ScriptedFleet:
    fl = ScriptedFleet(Core("f1", {"one": ONE, "bid": BID}))
    fl.agent("r1", "robot", [])
    fl.agent("r2", "robot", [])
    return fl


def _events(fx: list[Effect], kind: str) -> list[dict[str, object]]:
    return [e.event.data for e in fx if isinstance(e, Append) and e.event.kind == kind]


def test_a_workflow_takes_its_templates_protocol() -> None:
    """Without a choice at creation a workflow follows its template's ``coordination``."""
    fl = _fleet()
    fl.create("one", "w1")
    fl.create("bid", "w2")
    runs = fl.core.state.workflows
    assert (runs["w1"].coordination, runs["w2"].coordination) == ("direct", "auction_based")
    assert runs["w1"].allowed_agents is None


def test_the_creating_command_overrides_protocol_and_agents() -> None:
    """``create_workflow`` with ``coordination`` and ``agents`` records both in its event."""
    fl = _fleet()
    fx = fl.create("bid", "w1", coordination="direct", agents=["r2"])
    [created] = _events(fx, "workflow_created")
    assert (created["coordination"], created["agents"]) == ("direct", ["r2"])
    run = fl.core.state.workflows["w1"]
    assert (run.coordination, run.allowed_agents) == ("direct", ["r2"])


def test_a_plain_creation_event_carries_no_coordination_keys() -> None:
    """Only a chosen protocol or agent set is written: older logs and plain workflows match."""
    fl = _fleet()
    [created] = _events(fl.create("one", "w1"), "workflow_created")
    assert "coordination" not in created and "agents" not in created


def test_only_the_allowed_agents_take_the_workflows_steps() -> None:
    """r1 is free and first by id, but the workflow allows only r2: r2 gets the step."""
    fl = _fleet()
    fl.create("one", "w1", agents=["r2"])
    view = fl.workflow("w1")
    assert view is not None and view.steps["s"].agent == "r2"


def test_a_step_waits_when_no_allowed_agent_is_free() -> None:
    """With only disallowed agents free the step waits; allowing one assigns it at once."""
    fl = _fleet()
    fl.create("one", "w1", agents=["r3"])
    view = fl.workflow("w1")
    assert view is not None and view.steps["s"].state == "allocating"
    fx = fl.command("set_coordination", workflow_id="w1", protocol="direct", agents=["r1"])
    assert _events(fx, "step_assigned")[0]["agent"] == "r1"


def test_set_coordination_records_the_change_and_replies_with_it() -> None:
    """The event says the new protocol and agents; the reply repeats them."""
    fl = _fleet()
    fl.create("one", "w1")
    fx = fl.command("set_coordination", workflow_id="w1", protocol="consensus",
                    agents=["r1", "r2"])
    assert _events(fx, "coordination_set") == [{"protocol": "consensus",
                                                "agents": ["r1", "r2"]}]
    [reply] = _events(fx, "command_reply")
    assert reply["result"] == {"protocol": "consensus", "agents": ["r1", "r2"]}
    run = fl.core.state.workflows["w1"]
    assert (run.coordination, run.allowed_agents) == ("consensus", ["r1", "r2"])


def test_set_coordination_without_agents_allows_every_able_agent_again() -> None:
    """``agents`` left out means any able agent, also after a restriction."""
    fl = _fleet()
    fl.create("one", "w1", agents=["r2"])
    fl.command("set_coordination", workflow_id="w1", protocol="direct")
    assert fl.core.state.workflows["w1"].allowed_agents is None


@pytest.mark.parametrize(("args", "error"), [
    ({"workflow_id": "nope", "protocol": "direct"}, UnknownEntity),
    ({"workflow_id": "w1", "protocol": "telepathy"}, BadArguments),
    ({"workflow_id": "w1"}, BadArguments),
])
def test_set_coordination_refuses_bad_arguments_and_changes_nothing(
        args: dict[str, str], error: type[CoreError]) -> None:
    """An unknown workflow, an unknown protocol or a missing one is refused, no event."""
    fl = _fleet()
    fl.create("one", "w1", agents=["r2"])
    before = fl.core.snapshot()
    with pytest.raises(error):
        fl.command("set_coordination", **args)
    assert fl.core.snapshot() == before


def test_set_coordination_refuses_a_finished_workflow() -> None:
    """A completed workflow's protocol no longer matters: the command is refused."""
    fl = ScriptedFleet(Core("f1", {"one": ONE}, config=CoreConfig(archive_terminal=False)))
    fl.agent("r1", "robot", [])
    fl.create("one", "w1")
    fl.run()
    with pytest.raises(CoreError, match="completed"):
        fl.command("set_coordination", workflow_id="w1", protocol="direct")


def test_snapshot_and_replay_keep_protocol_and_agents() -> None:
    """A restored core and a replayed one hold the chosen protocol and agents."""
    fl = _fleet()
    fl.create("one", "w1", coordination="hierarchical", agents=["r2"])
    fl.command("set_coordination", workflow_id="w1", protocol="leader_follower",
               agents=["r1"])
    live = fl.core.snapshot()
    restored = Core.restore(live, "f1", {"one": ONE, "bid": BID})
    run = restored.state.workflows["w1"]
    assert (run.coordination, run.allowed_agents) == ("leader_follower", ["r1"])
    replayed = Core("f1", {"one": ONE, "bid": BID})
    for effect in fl.effects:
        if isinstance(effect, Append):
            replayed.apply(effect.event)
    assert replayed.snapshot() == live == restored.snapshot()
