"""Cheap scheduling for the simulator's hot paths, and the collector paused during a run.

A virtual run of 1,000 agents schedules millions of SimPy events, nearly all of them
"call this function at that simulated time": a message arriving over a link, an agent's
wake-up, a command's resend check. A SimPy ``Timeout`` for each costs an ``Event`` with its
dict, a callbacks list and a closure. ``call_at_delay`` puts a ``Call`` — the two things
``Environment.step`` reads of an event, its ``callbacks`` and ``_ok`` — on the same queue
through ``Environment.schedule``, so it is ordered exactly as a ``Timeout`` scheduled at
the same moment would be (time, priority, then scheduling order): swapping one for the
other leaves a run's event order, and so its log, byte for byte as it was.

``collector_paused`` turns Python's cyclic garbage collector off for a run. The objects a
run keeps (the cores' events, the recorded inputs, archived records) grow to millions, and
every full collection walks all of them again: ~18 % of a run's time, measured with
py-spy. A run makes almost no reference cycles (a few thousand in an hour of the stress
scenario), so little is left for the collector to find; it is turned back on when the
run ends, with what the run made moved to the oldest generation (``gc.freeze`` then
``gc.unfreeze``: no walk over them), where the collector looks at long-lived objects
anyway — and finds the run's world there once it is garbage.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import simpy
from simpy.events import NORMAL, URGENT

__all__ = ["NORMAL", "URGENT", "Call", "call_at_delay", "collector_paused"]


class Call:
    """A callback on SimPy's event queue: what ``Environment.step`` needs of an event."""

    __slots__ = ("callbacks",)
    _ok = True
    """Always succeeded: ``Environment.step`` checks it after the callbacks ran."""

    def __init__(self, fn: Callable[[Any], None]) -> None:
        self.callbacks: tuple[Callable[[Any], None], ...] | None = (fn,)
        """Called with this ``Call`` when its time comes (SimPy then sets it to None)."""


def call_at_delay(env: simpy.Environment, delay: float, fn: Callable[[Any], None],
                  priority: int = NORMAL) -> None:
    """Call ``fn(call)`` after ``delay`` simulated seconds, ordered as a ``Timeout`` (or,
    with ``URGENT``, a process start) scheduled now would be."""
    if delay < 0:  # as ``Timeout`` refuses it: time never runs backwards
        raise ValueError(f"delay: {delay} is negative")
    env.schedule(Call(fn), priority, delay)  # type: ignore[arg-type]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block with the cyclic garbage collector off (see the module docstring);
    its previous state is restored after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            # Age what the run made into the oldest generation, as the collector would
            # have for objects this long-lived: else its first young collection after
            # ``enable`` walks every one of them (~0.6 s after 2 simulated hours).
            gc.freeze()
            gc.unfreeze()
        if was_enabled:
            gc.enable()
