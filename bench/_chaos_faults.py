"""The chaos run's faults: a seeded schedule of wall moments, and what each fault does.

``schedule`` draws every fault's moment from ``random.Random(seed)`` within a window, at
least ``spacing_s`` apart, in a seeded order: kill -9 of each edge (restarted after 2 to 5 s),
a restart of the facility broker and of the cloud broker, bridge cuts of 10 s, kill -9 of
the hub (restarted after 2 to 5 s), and one loss of 20 % of the agents. The agent loss is
carried out by the simulator (permanent ``agent_failure`` faults at that moment, in its
scenario: ``agent_loss``); the others by ``inject`` on the ``ChaosRig``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench._chaos_rig import ChaosRig

__all__ = ["AGENT_LOSS", "BRIDGE_CUT_S", "Planned", "agent_loss", "inject", "schedule"]

AGENT_LOSS = 0.2
"""Share of the agents lost for good at the agent-loss moment."""
BRIDGE_CUT_S = 10.0
"""How long a bridge cut lasts."""


@dataclass(frozen=True)
class Planned:
    """One fault of the schedule."""

    at_s: float
    """Wall seconds after the simulated fleet started."""
    kind: str
    """``edge_kill``, ``broker_restart``, ``bridge_cut``, ``hub_kill`` or ``agent_loss``."""
    target: str
    """A facility (edge_kill), ``facility``/``cloud`` (broker_restart), ``bridge``,
    ``hub``, or ``agents``."""
    pause_s: float
    """Down time: before the restart, or the cut's length."""


def schedule(seed: int, facilities: Sequence[str], *, start_s: float, end_s: float,
             spacing_s: float, bridge_cuts: int = 2, hub_kills: int = 1) -> list[Planned]:
    """The faults at seeded moments in ``[start_s, end_s]``, ``spacing_s`` apart at least,
    in time order. ``ValueError`` if the window cannot hold them."""
    rng = random.Random(f"chaos/{seed}")
    kinds: list[tuple[str, str]] = [
        *(("edge_kill", f) for f in facilities),
        ("broker_restart", "facility"), ("broker_restart", "cloud"),
        *(("bridge_cut", "bridge") for _ in range(bridge_cuts)),
        *(("hub_kill", "hub") for _ in range(hub_kills)),
        ("agent_loss", "agents"),
    ]
    rng.shuffle(kinds)
    slack = end_s - start_s - spacing_s * (len(kinds) - 1)
    if slack < 0:
        raise ValueError(f"{len(kinds)} faults {spacing_s} s apart do not fit in "
                         f"[{start_s}, {end_s}] s")
    offsets = sorted(rng.uniform(0, slack) for _ in kinds)
    out = []
    for i, ((kind, target), offset) in enumerate(zip(kinds, offsets, strict=True)):
        pause = (BRIDGE_CUT_S if kind == "bridge_cut" else
                 1.0 if kind == "broker_restart" else
                 0.0 if kind == "agent_loss" else round(rng.uniform(2.0, 5.0), 2))
        out.append(Planned(round(start_s + offset + i * spacing_s, 2), kind, target, pause))
    return out


def agent_loss(seed: int, fleets: Sequence[Sequence[str]]) -> list[str]:
    """The agents lost: a seeded ``AGENT_LOSS`` share of each fleet entry (so every kind of
    agent keeps most of its members), as ``facility/agent`` targets."""
    rng = random.Random(f"chaos/{seed}/agents")
    lost: list[str] = []
    for members in fleets:
        lost.extend(rng.sample(list(members), round(AGENT_LOSS * len(members))))
    return lost


def inject(rig: ChaosRig, fault: Planned, t0: float) -> dict[str, Any]:
    """Carry out ``fault`` now (the agent loss is the simulator's: only recorded); its
    record for the JSON: the plan, the wall moment it began (s after ``t0``, a monotonic
    time) and how long it took."""
    began = time.monotonic()
    detail: dict[str, Any] = {}
    if fault.kind == "edge_kill" or fault.kind == "hub_kill":
        rig.kill_and_restart(fault.target, fault.pause_s)
    elif fault.kind == "broker_restart":
        rig.restart_broker(fault.target, fault.pause_s)
    elif fault.kind == "bridge_cut":
        detail["connections_dropped"] = rig.relay.cut(fault.pause_s)
    elif fault.kind != "agent_loss":
        raise ValueError(f"unknown fault kind {fault.kind!r}")
    return {**asdict(fault), "wall_s": round(began - t0, 2),
            "took_s": round(time.monotonic() - began, 2), **detail}
