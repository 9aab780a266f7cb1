"""Over real MQTT, both brokers: a ``consensus`` vote decided by majority, one that times
out and takes the default, and a ``hierarchical`` step split by a lead client
(docs/coordination.md, "consensus" and "hierarchical")."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_conflict_zone_mqtt import F, Scene, running_scene

from topics import (
    Ballot,
    HubCommand,
    Message,
    StepDone,
    SubStepAssigned,
    SubStepDone,
    Vote,
    agent_topic,
    edge_topic,
    encode,
)

TEMPLATES: dict[str, dict[str, Any]] = {
    "qc": {"name": "qc", "coordination": "consensus", "steps": [
        {"id": "go", "kind": "decision", "then": ["rework"], "else": ["ship"],
         "vote": {"participants": ["robot", "human"], "quorum": 1.0, "timeout_s": 3,
                  "default": "else"}},
        {"id": "rework", "kind": "robot"}, {"id": "ship", "kind": "robot"}]},
    "kit": {"name": "kit", "coordination": "hierarchical", "steps": [
        {"id": "kitting", "kind": "human", "composite": {"members": ["r1"]}}]},
}


@pytest.fixture(params=["mosquitto", "embedded"])
def votes_scene(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scene]:
    """The conflict-zone scene (robot r1, person h1) with the ``qc`` and ``kit`` templates."""
    templates = tmp_path / "templates"
    templates.mkdir()
    for name, doc in TEMPLATES.items():
        (templates / f"{name}.json").write_text(json.dumps(doc))
    with running_scene(request, tmp_path, ["--templates", str(templates)]) as s:
        s.announce(s.robot, "r1", "robot", "dock")
        s.announce(s.person, "h1", "human", "dock")
        s.wait(lambda x: x.kinds().count("agent_joined") == 2, "both agents joined")
        yield s


def _create(scene: Scene, template: str, workflow_id: str) -> None:
    scene.watch.publish(edge_topic(F, "cmd"), encode(HubCommand(
        command_id=f"create-{workflow_id}", action="create_workflow",
        args={"template": template, "workflow_id": workflow_id})), qos=1)


def _send(scene: Scene, agent_id: str, message: Message) -> None:
    wire = scene.robot if agent_id == "r1" else scene.person
    wire.publish(agent_topic(F, agent_id, "event"), encode(message), qos=1)


def _data(scene: Scene, kind: str, workflow_id: str) -> dict[str, Any]:
    return next(e.data for e in scene.events if e.kind == kind and e.workflow_id == workflow_id)


def _has(kind: str, workflow_id: str) -> Any:
    return lambda s: any(e.kind == kind and e.workflow_id == workflow_id for e in s.events)


def _vote(scene: Scene, agent_id: str, vote_id: str, choice: str) -> None:
    _send(scene, agent_id, Vote(event_id=f"{agent_id}-{vote_id}", agent_id=agent_id,
                                ts=time.time(), vote_id=vote_id, workflow_id="w1",
                                step_id="go", choice=choice))  # type: ignore[arg-type]


def test_a_consensus_vote_is_decided_by_majority(votes_scene: Scene) -> None:
    """Both voters get a ballot; two then-votes decide: rework runs, ship is skipped."""
    scene = votes_scene
    _create(scene, "qc", "w1")
    scene.wait(_has("vote_opened", "w1"), "the vote opened")
    opened = _data(scene, "vote_opened", "w1")
    assert opened["voters"] == ["r1", "h1"]
    scene.wait(lambda s: any(isinstance(c, Ballot) for c in s.commands), "r1 got a ballot")
    ballot = next(c for c in scene.commands if isinstance(c, Ballot))
    assert ballot.vote_id == opened["vote"] and ballot.then == ["rework"]
    _vote(scene, "r1", opened["vote"], "then")
    _vote(scene, "h1", opened["vote"], "then")
    scene.wait(_has("step_decided", "w1"), "the vote decided")
    decided = _data(scene, "step_decided", "w1")
    assert decided["result"] is True and decided["reason"] == "majority"
    assert _data(scene, "vote_closed", "w1")["tally"] == {"then": 2, "else": 0}
    assert sorted(e.data["agent"] for e in scene.events if e.kind == "vote_cast") == ["h1", "r1"]
    scene.wait(lambda s: any(e.kind == "step_assigned" and e.data["step"] == "rework"
                             for e in s.events), "rework assigned")


def test_a_consensus_vote_that_times_out_takes_the_default(votes_scene: Scene) -> None:
    """Quorum 1.0 and only one of two votes: at the deadline the else branch (ship)
    runs although the one vote said then."""
    scene = votes_scene
    _create(scene, "qc", "w1")
    scene.wait(_has("vote_opened", "w1"), "the vote opened")
    _vote(scene, "h1", _data(scene, "vote_opened", "w1")["vote"], "then")
    scene.wait(_has("vote_cast", "w1"), "the vote recorded")
    scene.wait(_has("step_decided", "w1"), "the deadline closed the vote", 30)
    decided = _data(scene, "step_decided", "w1")
    assert decided["result"] is False and decided["reason"] == "timeout"
    assert _data(scene, "vote_closed", "w1")["tally"] == {"then": 1, "else": 0}
    scene.wait(lambda s: any(e.kind == "step_skipped" and e.data["step"] == "rework"
                             for e in s.events), "rework skipped")


def test_a_team_lead_splits_its_composite_step(votes_scene: Scene) -> None:
    """h1 leads the kitting step, gives a part to r1, and finishes once it is done."""
    scene = votes_scene
    _create(scene, "kit", "w1")
    scene.wait(_has("step_assigned", "w1"), "the lead got the step")
    assert _data(scene, "step_assigned", "w1")["agent"] == "h1"
    common: dict[str, Any] = {"agent_id": "h1", "workflow_id": "w1", "step_id": "kitting",
                              "ts": time.time()}
    _send(scene, "h1", SubStepAssigned(event_id="e1", sub_id="bins", member="r1", **common))
    scene.wait(_has("substep_assigned", "w1"), "the part recorded")
    _send(scene, "h1", StepDone(event_id="e2", **common))  # too early: refused
    _send(scene, "h1", SubStepDone(event_id="e3", sub_id="bins", **common))
    scene.wait(_has("substep_done", "w1"), "the part done")
    assert not _has("step_done", "w1")(scene)
    _send(scene, "h1", StepDone(event_id="e4", **common))
    scene.wait(_has("workflow_completed", "w1"), "the workflow completed")
    assigned = _data(scene, "substep_assigned", "w1")
    assert (assigned["member"], assigned["agent"], assigned["sub"]) == ("r1", "h1", "bins")
