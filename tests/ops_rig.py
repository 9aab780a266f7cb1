"""What the Agents / Coordination / Conflicts tests share (no test here): templates whose
coordination stays visible long enough to look at, and simulated agents that leave out one
kind of message — a person without the handheld app's arrival button, an agent that ignores
calls for proposals — so an auction keeps bidding and a sync point keeps waiting.

``ops_fleet(port)`` starts them in ``fc`` (the stack's facility with the two fitters), but
the carriers in ``fb``:

- ``bidder1`` bids on ``ops_bid``'s step, ``mute1`` is invited too and never bids: the
  auction stays in ``bidding`` with one bid until ``--bid-window`` (``OPS_EDGE_FLAGS``);
- ``walker1`` and ``nophone1`` do ``ops_sync``'s two participant steps; only the walker
  reports its arrival, so the barrier waits for ``nophone1``;
- ``carrier1`` and ``carrier2`` form ``ops_team``'s leader/follower team and carry slowly
  (in ``fb``: a coalition step queued behind another facility's waiting step — the open
  auction — is only tried again when an agent becomes free, so it gets a queue of its own);
- ``ai1`` is ``ops_vote``'s only voter and never votes (simulated agents refuse ballots).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hub_stack import TEMPLATES

from agents_sim.native import AgentBehaviour, AgentSpec, FleetRunner, Outgoing
from topics import Bid, SyncArrival

__all__ = ["OPS_EDGE_FLAGS", "OPS_TEMPLATES", "Silent", "ops_fleet"]

OPS_TEMPLATES = {
    **TEMPLATES,
    "ops_bid.yaml": """\
name: ops_bid
coordination: auction_based
steps:
  - id: look
    kind: human
    capabilities: [bidder]
    location: pack
""",
    "ops_sync.yaml": """\
name: ops_sync
steps:
  - id: check
    kind: human
    capabilities: [nophone]
    location: pack
    estimated_duration_s: 1
  - id: walk
    kind: human
    capabilities: [walker]
    location: pack
    estimated_duration_s: 1
  - id: meet
    kind: sync
    participants: [check, walk]
    location: pack
""",
    "ops_team.yaml": """\
name: ops_team
coordination: leader_follower
steps:
  - id: carry
    kind: human
    capabilities: [carrier]
    location: pack
    estimated_duration_s: 600
    team:
      - {role: front}
      - {role: back}
""",
    "ops_vote.yaml": """\
name: ops_vote
coordination: consensus
steps:
  - id: go
    kind: decision
    then: [rework]
    else: [ship]
    vote: {participants: [ai], quorum: 1.0, timeout_s: 900, default: else}
  - id: rework
    kind: ai
    capabilities: [never]
  - id: ship
    kind: ai
    capabilities: [never]
""",
}
"""The stack's templates and the four above."""
OPS_EDGE_FLAGS = {"fc": ["--bid-window", "900"]}
"""``fc`` waits long for bids: an auction with a silent invitee stays open for the tests."""


class Silent(AgentBehaviour):
    """A simulated agent that never sends the messages of the types in ``drop``."""

    def __init__(self, spec: AgentSpec, now: float, incarnation: str,
                 drop: tuple[type[Any], ...]) -> None:
        super().__init__(spec, now, incarnation)
        self.drop = drop

    def _keep(self, out: list[Outgoing]) -> list[Outgoing]:
        return [o for o in out if not isinstance(o.message, self.drop)]

    def hello(self, now: float) -> list[Outgoing]:
        return self._keep(super().hello(now))

    def on_command(self, cmd: Any, now: float) -> list[Outgoing]:
        return self._keep(super().on_command(cmd, now))

    def tick(self, now: float) -> list[Outgoing]:
        return self._keep(super().tick(now))

    def on_edge_online(self, now: float) -> list[Outgoing]:
        return self._keep(super().on_edge_online(now))


def _person(agent_id: str, cap: str, speed: float = 20.0, kind: str = "human") -> AgentSpec:
    return AgentSpec(agent_id, kind, (cap,), node="pack", state_period_s=0.5,  # type: ignore[arg-type]
                     speed=speed)


@contextmanager
def ops_fleet(port: int) -> Iterator[FleetRunner]:
    """The agents above, in ``fc`` (the carriers in ``fb``), while the block runs."""
    specs = [_person("bidder1", "bidder"), _person("mute1", "bidder"),
             _person("walker1", "walker"), _person("nophone1", "nophone"),
             _person("ai1", "thinker", kind="ai")]
    carriers = FleetRunner("fb", [_person("carrier1", "carrier", speed=0.01),
                                  _person("carrier2", "carrier", speed=0.01)], port=port)
    fleet = FleetRunner("fc", specs, port=port)
    silent = {"mute1": (Bid,), "nophone1": (SyncArrival,)}
    for agent_id, drop in silent.items():
        fleet.behaviours[agent_id] = Silent(fleet.behaviours[agent_id].spec, 0.0,
                                            fleet.incarnation, drop)
    fleet.start()
    carriers.start()
    try:
        yield fleet
    finally:
        carriers.stop()
        fleet.stop()
