"""Over real MQTT, both brokers: the ``auction_based`` protocol (docs/coordination.md). Two
robots, plain MQTT clients, answer the edge's call for proposals with bids; the cheaper one
is awarded the step and does it. And a winner that goes silent loses the award to the next
bidder, who finishes the workflow."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_conflict_zone_mqtt import F, Scene, running_scene
from tests.test_deadlock_mqtt import Robot
from topics import (
    AgentCommand,
    Award,
    Bid,
    Cancel,
    Cfp,
    agent_topic,
    decode,
    encode,
)

_HAUL = """name: haul
coordination: auction_based
steps:
  - {id: carry, kind: robot, location: pack}
"""


class Bidder(Robot):
    """A robot that bids ``cost`` once on each call for proposals it gets, and records the
    awards and cancels sent to it (its assignments are kept by ``Robot``)."""

    def __init__(self, scene: Scene, agent_id: str, cost: float) -> None:
        self.cost = cost
        self.calls: list[Cfp] = []
        self.told: list[AgentCommand] = []
        super().__init__(scene, agent_id)

    def _on_command(self, topic: str, payload: bytes, at: float) -> None:
        cmd = decode(payload, AgentCommand)
        if isinstance(cmd, Cfp) and all(c.cfp_id != cmd.cfp_id for c in self.calls):
            self.calls.append(cmd)  # a resent call gets no second bid
            self._n += 1
            self.wire.publish(agent_topic(F, self.id, "event"), encode(Bid(
                event_id=f"{self.id}-{self._n}", agent_id=self.id, ts=time.time(),
                cfp_id=cmd.cfp_id, cost=self.cost, eta_s=self.cost)), qos=1)
        elif isinstance(cmd, Award | Cancel):
            with self.scene.changed:
                self.told.append(cmd)
                self.scene.changed.notify_all()
        super()._on_command(topic, payload, at)

    def got(self, workflow_id: str, step_id: str) -> bool:
        """Whether an ``Assign`` of that step (any attempt) reached it."""
        return any((a.workflow_id, a.step_id) == (workflow_id, step_id) for a in self.assigned)


@pytest.fixture(params=["mosquitto", "embedded"])
def scene(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scene]:
    """The zone test's scene, its edge with an auctioned template and short auction times."""
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "haul.yaml").write_text(_HAUL)
    with running_scene(request, tmp_path, ["--templates", str(templates), "--bid-window", "2",
                                           "--award-timeout", "2"]) as s:
        yield s


def _auction(scene: Scene, *costs: tuple[str, float]) -> list[Bidder]:
    """Announce the bidders, then create workflow w1 from ``haul``."""
    bidders = [Bidder(scene, aid, cost) for aid, cost in costs]
    for bidder in bidders:
        scene.announce(bidder.wire, bidder.id, "robot", "dock")
    scene.wait(lambda s: s.kinds().count("agent_joined") == len(bidders), "bidders joined")
    scene.hub_command("make-w1", "create_workflow", template="haul", workflow_id="w1")
    scene.wait(lambda s: "cfp_opened" in s.kinds(), "the call for proposals")
    return bidders


def _data(scene: Scene, kind: str) -> list[dict[str, object]]:
    return [e.data for e in scene.events if e.kind == kind]


def test_two_bidders_the_cheaper_is_awarded_and_does_the_step(scene: Scene) -> None:
    """Both bids are events; the lower cost gets Award then Assign and completes w1."""
    r2, r3 = bidders = _auction(scene, ("r2", 5.0), ("r3", 2.0))
    try:
        [opened] = _data(scene, "cfp_opened")
        assert opened["invited"] == ["r2", "r3"]
        scene.wait(lambda s: r3.got("w1", "carry"), "r3 assigned")
        assert [type(c) for c in r3.told] == [Award]
        r3.do("w1", "carry")
        scene.wait(lambda s: "workflow_completed" in s.kinds(), "w1 completed")
    finally:
        for bidder in bidders:
            bidder.wire.close()
    bids = {d["agent"]: d["cost"] for d in _data(scene, "bid_received")}
    assert bids == {"r2": 5.0, "r3": 2.0}
    [awarded] = _data(scene, "step_awarded")
    assert (awarded["agent"], awarded["cost"]) == ("r3", 2.0)
    assert not r2.assigned and "award_unanswered" not in scene.kinds()


def test_an_auction_whose_winner_goes_silent_is_re_awarded(scene: Scene) -> None:
    """r2 wins but never answers: after the award timeout r2 is told to drop the step, r3
    (the next bid) is awarded and finishes the workflow."""
    r2, r3 = bidders = _auction(scene, ("r2", 1.0), ("r3", 4.0))
    try:
        scene.wait(lambda s: r2.got("w1", "carry"), "r2 assigned")
        scene.wait(lambda s: r3.got("w1", "carry"), "r3 assigned after r2's silence", 30)
        r3.do("w1", "carry")
        scene.wait(lambda s: "workflow_completed" in s.kinds(), "w1 completed")
        scene.wait(lambda s: any(isinstance(c, Cancel) for c in r2.told), "r2 told to drop it")
    finally:
        for bidder in bidders:
            bidder.wire.close()
    assert [d["agent"] for d in _data(scene, "step_awarded")] == ["r2", "r3"]
    [silent] = _data(scene, "award_unanswered")
    assert silent["agent"] == "r2"
    kinds = scene.kinds()
    assert kinds.index("award_unanswered") < kinds.index("step_requeued")
    done = next(e for e in scene.events if e.kind == "step_done")
    assert done.data["agent"] == "r3"
