"""When workflows arrive, and what creates them: one timing for a facility's ``arrivals`` and
the scenario's ``cross_facility`` pairs alike (docs/simulator.md, "Scenarios").

``arrive`` is a SimPy process body: exactly one of ``rate_per_h`` (Poisson: exponential
gaps drawn from the caller's seeded ``random.Random``), ``every_s`` (first at ``every_s``)
or ``at`` (given times, in order); each arrival before ``end`` calls ``fire(n)``, n from 1.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator
from typing import Any, Protocol

import simpy

from edge_runtime.core import Template

__all__ = ["Creation", "Timing", "arrive", "create_args"]


class Timing(Protocol):
    """An arrival's timing fields (``Arrival``, ``CrossFacilityArrival``)."""

    @property
    def rate_per_h(self) -> float | None: ...
    @property
    def every_s(self) -> float | None: ...
    @property
    def at(self) -> list[float] | None: ...


class Creation(Protocol):
    """What a created workflow takes from its scenario entry (``Arrival``,
    ``CrossFacilityEnd``)."""

    @property
    def priority(self) -> int: ...
    @property
    def deadline_s(self) -> float | None: ...
    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def coordination(self) -> str | None: ...


def arrive(env: simpy.Environment, timing: Timing, rng: random.Random, end: float,
           fire: Callable[[int], None]) -> Generator[simpy.Event, Any, None]:
    """Wait for each arrival before ``end`` and call ``fire`` with its number."""
    times = sorted(timing.at) if timing.at is not None else []
    n = 0
    while True:
        if timing.at is not None:
            if n >= len(times):
                return
            at = times[n]
        elif timing.every_s is not None:
            at = (n + 1) * timing.every_s
        else:
            assert timing.rate_per_h is not None
            at = env.now + rng.expovariate(timing.rate_per_h / 3600.0)
        if at >= end:
            return
        yield env.timeout(at - env.now)
        n += 1
        fire(n)


def create_args(workflow_id: str, template: Template, c: Creation, now: float
                ) -> dict[str, Any]:
    """The ``create_workflow`` arguments of one arrival at ``now`` (the edge's clock)."""
    args: dict[str, Any] = {"template": template.key, "workflow_id": workflow_id,
                            "priority": c.priority, "data": dict(c.data)}
    if c.deadline_s is not None:
        args["deadline"] = now + c.deadline_s
    if c.coordination is not None:
        args["coordination"] = c.coordination
    return args
