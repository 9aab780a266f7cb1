"""Replay a production run: an edge's recorded inputs fed through a core again, in virtual time.

An edge run with ``--record-inputs`` (``EdgeConfig.record_inputs``) keeps every input its
core was given, with the ``now`` it was given, in its store's ``inputs`` family, after a
boot record of what it made the core with (facility, options, templates' and map's
documents). ``replay_store`` opens that store read-only (a running edge may hold it),
makes a fresh core from the boot record — or from changed templates, strategies or core
options: a what-if — feeds it every recorded input, and compares the events it makes with
the stored ones::

    >>> report = replay_store("data/edge-f1/store")          # doctest: +SKIP
    >>> report.identical, report.first_difference             # doctest: +SKIP
    (True, None)

How the replay follows the edge:

- a boot record (the edge started) rebuilds the replay's core from the events the replay
  made so far, as the edge recovered its own from its log; an input the core refused with
  half a change applied rebuilds it likewise, as the edge's shell does;
- timers: a recorded ``TimerFired`` is fed if the replay's core has that timer armed and
  due, and skipped otherwise (a changed core may not want it, or later); a timer the
  replay's core armed and that fell due is fired in virtual time just before the first
  recorded input after it (the edge fires due timers at the start of its next batch).
  With nothing changed the two are the same: the edge fired exactly its core's timers.

``ReplayReport`` says whether the logs are byte-identical and, if not, where they part:
the first differing seq, each workflow whose outcome differs (final state, completion
time, agents assigned, attempts), refusals, and totals.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge_runtime.core import (
    Append,
    CancelTimer,
    Core,
    CoreConfig,
    Event,
    Restarted,
    SetTimer,
    Template,
    TimerFired,
    check_strategies,
)
from edge_runtime.facility import MapError, map_cost, parse_map, zones_by_node
from edge_runtime.replay._report import ReplayReport, compare, workflow_outcomes
from edge_runtime.store import (
    BootRecord,
    EventStore,
    RecordedInput,
    StoreError,
    refusal,
    store_path,
)
from edge_runtime.templates import templates_from_sources
from topics import ProtocolError

__all__ = ["NO_INPUTS", "ReplayError", "ReplayReport", "replay_store", "workflow_outcomes"]

NO_INPUTS = "this store recorded no inputs (run the edge with --record-inputs)"
_NOT_OPTIONS = frozenset(("cost", "exclusive_zones"))
"""``CoreConfig`` fields the map gives, not options."""


class ReplayError(Exception):
    """The store cannot be replayed (none there, nothing recorded, a bad override)."""


class _Replay:
    """The replaying core, its log and its timers."""

    def __init__(self, templates: Mapping[str, Template] | None,
                 options: Mapping[str, Any], strategies: Mapping[str, str]) -> None:
        self.templates_override = templates
        self.options = options
        self.strategies = strategies
        self.core: Core | None = None
        self.events: list[Event] = []
        self.make: Any = None
        self.timers: dict[str, tuple[float, int, float]] = {}
        """Armed timer id → (deadline, order of its arming, the ``now`` it was armed at)."""
        self.heap: list[tuple[float, int, str]] = []
        self.order = 0
        self.refused: list[tuple[int, str | None, str | None]] = []
        """(input index, recorded refusal, replayed refusal) where either refused."""
        self.stats = {"recorded_fired": 0, "recorded_skipped": 0, "virtual_fired": 0}

    # -- the core ------------------------------------------------------------------

    def boot(self, boot: BootRecord) -> None:
        """The edge (re)started: a core made as the boot record (or the overrides) says,
        recovered from the replay's own log; no timers armed until ``Restarted``."""
        templates = self.templates_override
        if templates is None:
            try:
                templates = templates_from_sources(boot.templates)
            except Exception as exc:
                raise ReplayError(f"the recorded templates do not load: {exc}") from None
        try:
            fmap = None if boot.map_text is None else parse_map(boot.map_text,
                                                               boot.map_name or "map.yaml")
        except MapError as exc:
            raise ReplayError(f"the recorded map does not load: {exc}") from None
        options = {**boot.config, **self.options}
        if self.strategies:
            options["conflict_strategies"] = {**options.get("conflict_strategies", {}),
                                              **self.strategies}
        try:
            config = CoreConfig(cost=map_cost(fmap) if fmap else None,
                                exclusive_zones=zones_by_node(fmap), **options)
        except (TypeError, ValueError) as exc:  # a later build's option, say
            raise ReplayError(f"the recorded core options do not apply: {exc}") from None
        facility = boot.facility
        self.make = lambda: Core(facility, templates, config=config)
        self.rebuild()
        self.timers.clear()
        self.heap.clear()

    def rebuild(self) -> None:
        """The core afresh from the replay's log (as the edge recovers from its store)."""
        core = self.make()
        for event in self.events:
            core.apply(event)
        self.core = core

    def feed(self, record: RecordedInput) -> None:
        """One recorded input at its recorded ``now``; ``refused`` compared."""
        core = self.core
        assert core is not None and record.input is not None
        seq = core.last_seq
        replayed: str | None = None
        try:
            effects = core.handle(record.input, record.now)
        except Exception as exc:
            replayed = refusal(exc)
            if core.last_seq != seq or core.needs_rebuild:
                self.rebuild()  # as the shell does: the log never saw the half change
        else:
            self.collect(effects, record.now)
        if replayed is not None or record.refused is not None:
            self.refused.append((record.index, record.refused, replayed))

    def collect(self, effects: list[Any], now: float) -> None:
        for effect in effects:
            if isinstance(effect, Append):
                self.events.append(effect.event)
            elif isinstance(effect, SetTimer):
                self.order += 1
                self.timers[effect.timer_id] = (effect.at, self.order, now)
                heapq.heappush(self.heap, (effect.at, self.order, effect.timer_id))
            elif isinstance(effect, CancelTimer):
                self.timers.pop(effect.timer_id, None)

    # -- timers --------------------------------------------------------------------

    def recorded_timer(self, record: RecordedInput) -> None:
        """A recorded firing: fed if the replay's core has that timer armed and due."""
        assert isinstance(record.input, TimerFired)
        armed = self.timers.get(record.input.timer_id)
        if armed is None or armed[0] > record.now:
            self.stats["recorded_skipped"] += 1
            return
        del self.timers[record.input.timer_id]
        self.stats["recorded_fired"] += 1
        self.feed(record)

    def fire_due(self, now: float, index: int) -> None:
        """Fire, at ``now``, the timers armed before ``now`` that fell due by then."""
        held: list[tuple[float, int, str]] = []
        heap = self.heap
        while heap and heap[0][0] <= now:
            at, order, timer_id = heapq.heappop(heap)
            armed = self.timers.get(timer_id)
            if armed is None or armed[:2] != (at, order):
                continue  # cancelled or re-armed (its newer entry is in the heap)
            if armed[2] >= now:
                held.append((at, order, timer_id))  # armed in this batch: the next one
                continue
            del self.timers[timer_id]
            self.stats["virtual_fired"] += 1
            self.feed(RecordedInput(index, now, TimerFired(timer_id)))
        for entry in held:
            heapq.heappush(heap, entry)


def replay_store(
    path: str | Path,
    *,
    templates: Mapping[str, Template] | None = None,
    strategies: Mapping[str, str] | None = None,
    config: Mapping[str, Any] | None = None,
) -> ReplayReport:
    """Replay the recorded inputs of the store at ``path`` (a store or an edge's data dir).

    ``templates`` replace the recorded ones; ``strategies`` (rule → strategy) are merged
    into ``conflict_strategies``; ``config`` sets ``CoreConfig`` options. ``ReplayError``
    with a clear message if the store is missing, recorded nothing, or an override is bad.
    """
    options = _check_options(config or {}, strategies or {})
    directory = store_path(path)
    try:
        store = EventStore(directory, None, read_only=True)
    except StoreError as exc:
        raise ReplayError(str(exc)) from None
    with store:
        if store.input_count() == 0:
            raise ReplayError(f"{directory}: {NO_INPUTS}")
        recorded = list(store.read())
        recorded_payloads = list(store.read_payloads())
        replay = _Replay(templates, options, dict(strategies or {}))
        inputs = boots = 0
        for record in store.recorded_inputs():
            if record.boot is not None:
                if boots == 0:  # events before the recording began are taken as they are
                    replay.events = recorded[:record.boot.last_seq]
                boots += 1
                replay.boot(record.boot)
                continue
            if replay.core is None:
                raise ReplayError(f"{directory}: input record {record.index} comes before "
                                  "any boot record")
            inputs += 1
            if isinstance(record.input, TimerFired):
                replay.recorded_timer(record)
                continue
            if not isinstance(record.input, Restarted):
                replay.fire_due(record.now, record.index)
            replay.feed(record)
        facility = store.facility
    try:
        return compare(str(directory), facility, (inputs, boots), recorded, recorded_payloads,
                       replay.events, replay.refused, replay.stats,
                       _changes(templates, strategies, config))
    except ProtocolError as exc:
        raise ReplayError(f"the replayed events do not pack: {exc}") from None


def _check_options(config: Mapping[str, Any], strategies: Mapping[str, str]) -> dict[str, Any]:
    """The overridden ``CoreConfig`` options, checked by name; ``ReplayError`` naming one."""
    known = {f.name for f in dataclasses.fields(CoreConfig)} - _NOT_OPTIONS
    for name in config:
        if name not in known:
            raise ReplayError(f"config: {name!r} is not a core option; one of "
                              f"{', '.join(sorted(known))}")
    try:
        check_strategies(dict(strategies))
    except ValueError as exc:
        raise ReplayError(f"strategies: {exc}") from None
    try:
        CoreConfig(**config)
    except (TypeError, ValueError) as exc:
        raise ReplayError(f"config: {exc}") from None
    return dict(config)


def _changes(templates: Mapping[str, Template] | None, strategies: Mapping[str, str] | None,
             config: Mapping[str, Any] | None) -> list[str]:
    changed = [] if templates is None else [
        "templates " + ",".join(sorted({t.key for t in templates.values()}))]
    changed += [f"strategy {k}={v}" for k, v in sorted((strategies or {}).items())]
    changed += [f"{k}={v!r}" for k, v in sorted((config or {}).items())]
    return changed
