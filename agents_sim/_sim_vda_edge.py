"""The virtual edge's VDA 5050 side: the edge's own VDA master for a facility's VDA robots.

``SimEdge`` plays the edge shell for a ``Core``; for a facility whose fleet has VDA 5050
robots (``protocol: vda5050``) this module plays the rest of the shell's part: a
``VdaMaster`` + ``VdaBridge`` built as ``edge_runtime.shell.open_core`` builds them (the
master routes on the facility map's graph), wired as the shell's runtime wires them:

- an AGV's message (JSON, checked against its version's schemas by ``topics.encode_vda``
  when the AGV sent it — once: a second check on receipt, as the shell's intake makes,
  would double the simulator's dearest part) goes to ``VdaBridge.inbound``;
- a core ``Publish`` the bridge ``handles`` (a command for an AGV) goes to
  ``VdaBridge.command`` instead of the native command outbox (``SimEdge._publish``);
- the translations' VDA messages go to the AGVs over their links, encoded by
  ``topics.encode_vda``; their native inputs go through the core in order, *after* the
  input in hand — from inside a core input's effects they wait until those are all carried
  out (the shell's ``_handle`` queue), so the log stays in ``seq`` order;
- ``VdaBridge.tick`` every second (the shell's ``_process``): silent AGVs are lost,
  unanswered instant actions resent.

Time is the edge's simulated clock, so every header's timestamp and every order id comes
out the same on every run. The one liberty taken: the shell announces every AGV with one
``--vda-capabilities`` list; here each AGV gets its fleet entry's ``capabilities``.

This is the only part of ``agents_sim`` that imports ``edge_runtime.vda5050``: it stands in
for the edge's shell, not for an agent (docs/decisions.md; pyproject's import contracts).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Generator
from typing import Any

import simpy

from agents_sim._sim_agent import SimLink
from agents_sim._sim_edge import SimEdge
from agents_sim._sim_scenario import FacilitySpec
from agents_sim._sim_vda import SimVdaRobot, vda_model
from edge_runtime.core import Input, Publish
from edge_runtime.vda5050 import VdaBridge, VdaMaster, VdaMessage, VdaTranslation
from topics import AgentConn, Message, ProtocolError, encode_vda

__all__ = ["TICK_S", "VdaEdge", "vda_fleet"]

TICK_S = 1.0
"""How often the master's timer input runs (the shell's: at most once a second)."""


class VdaEdge:
    """A facility's VDA 5050 master and bridge, driven by its ``SimEdge``."""

    def __init__(self, edge: SimEdge, spec: FacilitySpec) -> None:
        facility_map = spec.facility_map
        assert facility_map is not None  # load_scenario: a VDA robot needs the map
        self.edge = edge
        self.bridge = VdaBridge(spec.id, VdaMaster(graph=facility_map.graph))
        """The edge's VDA 5050 master and its translation to core agents."""
        self.robots: dict[str, SimVdaRobot] = {}
        """Serial number (= agent id) -> the robot."""
        self.capabilities: dict[str, list[str]] = {}
        """Serial number -> the capabilities it is announced to the core with."""
        self.refused = 0
        """AGV messages the master refused, or that failed their schema."""
        self._follow: deque[Input] = deque()
        self._draining = False
        self._armed = False
        edge.env.process(self._ticks())

    # --- AGV -> edge ---------------------------------------------------------------

    def from_agv(self, serial: str, kind: str, payload: bytes) -> None:
        """A message of an AGV reached the edge (lost while the edge is cut off)."""
        edge = self.edge
        if not edge.up:
            edge.dropped += 1
            return
        robot = self.robots[serial]
        try:
            message = json.loads(payload)  # checked against its schema when sent
            translation = self.bridge.inbound(robot.model.manufacturer, serial, kind,
                                              message, edge.now)
        except ProtocolError:
            self.refused += 1
            edge.rejected += 1
            return
        self._carry(translation, at_once=True)

    # --- core -> AGV ---------------------------------------------------------------

    def command(self, topic: str, message: Message) -> bool:
        """A core ``Publish``: True if it was an AGV's (sent on as VDA messages), else the
        native agent's to deliver. Called while a core input's effects are carried out."""
        effect = Publish(topic, message)
        if not self.bridge.handles(effect):
            return False
        self._carry(self.bridge.command(effect, self.edge.now), at_once=False)
        return True

    def _ticks(self) -> Generator[simpy.Event, Any, None]:
        while True:
            yield self.edge.env.timeout(TICK_S)
            self._carry(self.bridge.tick(self.edge.now), at_once=True)

    # --- translations --------------------------------------------------------------

    def _carry(self, translation: VdaTranslation, *, at_once: bool) -> None:
        for message in translation.messages:
            self._to_agv(message)
        if not translation.inputs:
            return
        for item in translation.inputs:
            self._follow.append(self._announced(item))
        if at_once:
            self._drain()
        elif not self._draining and not self._armed:  # after the effects in hand
            self._armed = True
            self.edge.env.timeout(0).callbacks.append(self._drain)

    def _announced(self, item: Input) -> Input:
        """An AGV's online ``AgentConn`` with its own fleet entry's capabilities."""
        if isinstance(item, AgentConn) and item.online and item.agent_id in self.capabilities:
            return item.model_copy(update={"capabilities": self.capabilities[item.agent_id]})
        return item

    def _drain(self, _: object = None) -> None:
        """Feed the queued inputs to the core, first in first out (the inputs they lead
        to join the queue's end)."""
        self._armed = False
        if self._draining:
            return
        self._draining = True
        try:
            while self._follow:
                self.edge.feed(self._follow.popleft())
        finally:
            self._draining = False

    def _to_agv(self, message: VdaMessage) -> None:
        edge = self.edge
        parts = message.topic.split("/")
        robot = self.robots.get(parts[3]) if len(parts) == 5 else None
        if robot is None:
            return
        if not edge.up:
            edge.dropped += 1
            return
        kind = parts[4]
        payload = encode_vda(message.message, kind)  # type: ignore[arg-type]
        robot.link.send(robot.receive, (kind, payload))


def vda_fleet(env: simpy.Environment, f: FacilitySpec, edge: SimEdge, *, seed: int,
              epoch: float, latency_s: float) -> list[SimVdaRobot]:
    """The facility's VDA 5050 robots (its ``protocol: vda5050`` fleet entries), each on
    the facility's ``VdaEdge`` (made and set as ``edge.vda`` on the first); ``seed`` is the
    facility's."""
    m = f.facility_map
    made: list[SimVdaRobot] = []
    for entry in f.fleet:
        if entry.protocol != "vda5050":
            continue
        assert m is not None  # load_scenario: a VDA robot needs the map
        vda = edge.vda
        if vda is None:
            vda = edge.vda = VdaEdge(edge, f)
        model = vda_model(entry)
        start = entry.node or (m.chargers or list(m.nodes))[0]
        for n in range(1, entry.count + 1):
            agent_id = f"{entry.id_prefix or entry.kind}-{n}"
            robot = SimVdaRobot(
                env, agent_id, model, node=start, facility_map=m, epoch=epoch,
                link=SimLink(env, latency_s), to_edge=vda.from_agv, seed=seed,
                battery=100.0 if entry.battery is None else entry.battery)
            vda.robots[agent_id] = robot
            vda.capabilities[agent_id] = list(entry.capabilities)
            made.append(robot)
    return made
