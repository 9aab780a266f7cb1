"""The hub in a virtual run: its aggregation logic stepped under SimPy time, with no broker
(docs/simulator.md, "Hub in virtual runs and cross-facility workflows").

``agents_sim`` may not import ``cloud_hub`` (they are sibling layers), so the hub comes in
as a ``HubModel`` — ``cloud_hub.VirtualHub`` is one: the hub's real ``Ingest``, worker round,
observers and RocksDB store — or as a factory that makes one from the scenario's templates.
``SimHub`` plays the MQTT between the edges and it: every ``round_s`` simulated seconds it
hands each reachable edge's new events (``edge/events`` payloads, as the edge streams them)
to the hub ``latency_s`` later, runs one round, and feeds each command the hub published to
its edge ``latency_s`` later (``SimEdge.feed``; the reply is a ``command_reply`` event that
goes back with the stream). An edge cut off (``edge_drop``, ``broker_restart``) neither
sends nor receives: the hub gets its will (offline) at once; when it is back its online
status with its last seq, and the stream resumes where it stopped, so the hub catches up.
A ``replay`` the hub asks for is the edge shell's part: played here, from the edge's log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol

import simpy

from agents_sim._sim_cross import cross_arrivals
from agents_sim._sim_edge import SimEdge
from agents_sim._sim_scenario import HubSettings, Scenario, ScenarioError
from edge_runtime.core import Template
from topics import HubCommand, pack_edge_events

__all__ = ["HubFactory", "HubModel", "SimHub", "hub_templates", "open_hub", "start_hub"]

REPLAY_MAX = 10_000
"""Events an edge republishes per ``replay`` request (as the edge shell)."""


class HubModel(Protocol):
    """The hub's aggregation, stepped by the caller (``cloud_hub.VirtualHub``)."""

    def take(self, facility: str, payloads: list[bytes]) -> None:
        """Queue ``edge/events`` payloads of ``facility`` for the next round."""

    def status(self, facility: str, online: bool, high_water_seq: int, now: float) -> None:
        """Queue ``facility``'s ``edge/status`` for the next round."""

    def round(self, now: float) -> Sequence[tuple[str, HubCommand]]:
        """One round at ``now``; the commands it publishes, ``(facility, command)``."""
        ...

    def summary(self) -> dict[str, Any]:
        """What the hub aggregated, with a ``state_hash``."""
        ...

    def close(self) -> None:
        """Release what it holds (its store)."""


HubFactory = Callable[[Mapping[str, Template]], HubModel]
"""Makes a hub for a run from the templates its edges run (``hub_templates``)."""


def hub_templates(scenario: Scenario) -> dict[str, Template]:
    """Every facility's templates in one mapping (the hub's replicas of every facility use
    one set). ``ScenarioError`` naming the facility if two facilities load different
    templates under one ``name@version``."""
    merged: dict[str, Template] = {}
    for i, f in enumerate(scenario.facilities):
        for k, t in f.loaded_templates.items():
            known = merged.get(k)
            if known is None:
                merged[k] = t
            elif "@" in k and known.model_dump() != t.model_dump():
                raise ScenarioError(f"facilities[{i}].templates: {k} differs from another "
                                    "facility's; the hub's replicas need one of each")
    return merged


class SimHub:
    """The links between ``edges`` and ``hub`` in virtual time (see the module doc)."""

    def __init__(self, env: simpy.Environment, hub: HubModel, edges: Mapping[str, SimEdge],
                 settings: HubSettings, epoch: float) -> None:
        self.env, self.hub, self.edges = env, hub, edges
        self.round_s, self.latency_s, self.epoch = settings.round_s, settings.latency_s, epoch
        self.streamed = dict.fromkeys(edges, 0)
        """Facility -> events of its log handed to the hub so far."""
        self.online = dict.fromkeys(edges, True)
        """What the hub was last told of each edge."""
        self.commands = 0
        """Commands the hub published that reached their edge."""
        self.dropped = 0
        """Commands lost because their edge was cut off when they arrived."""
        self.replays = 0
        for facility in edges:  # each edge's retained status when the hub subscribes
            hub.status(facility, True, 0, epoch + env.now)
        env.process(self._rounds())

    @property
    def now(self) -> float:
        return self.epoch + self.env.now

    def _rounds(self) -> Any:
        while True:
            yield self.env.timeout(self.round_s)
            self.tick()

    def tick(self) -> None:
        """Stream what the edges appended, run one hub round, send its commands."""
        for facility, edge in self.edges.items():
            if edge.up != self.online[facility]:
                self.online[facility] = edge.up  # its will, or its status online again
                self.hub.status(facility, edge.up, edge.core.last_seq, self.now)
            if not edge.up:
                continue
            start = self.streamed[facility]
            if start < len(edge.events):
                self.streamed[facility] = len(edge.events)
                self._to_hub(facility, pack_edge_events(edge.events[start:], facility))
        for facility, cmd in self.hub.round(self.now):
            self._later(partial(self._to_edge, facility, cmd))

    def finish(self) -> dict[str, Any]:
        """At the end of the run: what reachable edges appended last goes in, one more
        round (its commands go nowhere: the run is over), and the hub's summary."""
        for facility, edge in self.edges.items():
            start = self.streamed[facility]
            if edge.up and start < len(edge.events):
                self.streamed[facility] = len(edge.events)
                self.hub.take(facility, pack_edge_events(edge.events[start:], facility))
        self.hub.round(self.now)
        return {**self.hub.summary(), "commands_delivered": self.commands,
                "commands_dropped": self.dropped, "replays": self.replays}

    # --- the links ------------------------------------------------------------------------

    def _later(self, then: Callable[[], None]) -> None:
        self.env.timeout(self.latency_s).callbacks.append(lambda _: then())

    def _to_hub(self, facility: str, payloads: list[bytes]) -> None:
        self._later(lambda: self.hub.take(facility, payloads))

    def _to_edge(self, facility: str, cmd: HubCommand) -> None:
        edge = self.edges[facility]
        if not edge.up:
            self.dropped += 1
            return
        if cmd.action == "replay":  # the shell's: republish from its log
            start = max(1, int(cmd.args.get("from_seq", 1)))
            events = edge.events[start - 1:start - 1 + REPLAY_MAX]
            if events:
                self.replays += 1
                self._to_hub(facility, pack_edge_events(events, facility))
            return
        self.commands += 1
        edge.feed(cmd)


def open_hub(scenario: Scenario, hub: HubModel | HubFactory | None
             ) -> tuple[HubModel | None, bool]:
    """The run's hub and whether the run made it (then the run closes it): ``hub`` itself,
    or what the factory makes of the scenario's templates (a class such as
    ``cloud_hub.VirtualHub`` is a factory). ``ValueError`` if the scenario needs a hub
    (``hub:``, ``cross_facility``) and none is given."""
    if hub is None:
        if scenario.hub is not None or scenario.cross_facility:
            raise ValueError(f"hub: scenario {scenario.name} runs the hub's aggregation "
                             "(hub:, cross_facility); pass run_virtual(..., hub=...), e.g. "
                             "cloud_hub.VirtualHub (fleetflow sim does)")
        return None, False
    if isinstance(hub, type) or not hasattr(hub, "round"):
        factory: HubFactory = hub  # type: ignore[assignment]
        return factory(hub_templates(scenario)), True
    return hub, False  # type: ignore[return-value]


def start_hub(env: simpy.Environment, hub: HubModel, edges: Mapping[str, SimEdge],
              scenario: Scenario, seed: int, epoch: float) -> SimHub:
    """The hub's links and rounds, and the scenario's cross-facility arrivals."""
    sim_hub = SimHub(env, hub, edges, scenario.hub or HubSettings(), epoch)
    for i in range(len(scenario.cross_facility)):
        env.process(cross_arrivals(env, scenario, seed, i, edges))
    return sim_hub
