"""Typed and external dependencies between workflows (docs/design.md §5, docs/workflows.md).

A plain sequential dependency within the facility keeps its old form (``depends_on``,
``Flow.start_if_ready``/``propagate``). Every other one — a typed dependency on a workflow
here (``parallel``, ``conditional``, ``resource_based``, ``data_flow``), or any dependency on
a workflow in another facility — is an entry of the target's ``WorkflowRun.deps``:
``[depends_on, type, conditions, facility | None, status]``, status ``waiting`` until it is
``released``, ``failed`` or ``skipped`` (event ``dependency_resolved``).

A local entry is decided here by ``dependency_outcome`` from the source's facts; the target
is also in the source's ``dependents`` (so the source stays in memory, keeps its data for the
rule, and cycles through it are seen). ``review`` looks again at the pending targets of
every workflow an input touched, once the input's own decisions are made: one place, in
event order, hence deterministic. An external entry waits for the hub's
``resolve_dependency`` (the hub applies the same rules to its replica of the source's
facility). A target starts once every dependency of it is released; one that fails fails
it, one that is skipped cancels it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from edge_runtime.core._command_args import (
    BadArguments,
    CreateArgs,
    DependencyArgs,
    DependencySpec,
    ResolveDependencyArgs,
    parse_args,
)
from edge_runtime.core._context import Context
from edge_runtime.core._dependency_rules import (
    DependencyOutcome,
    SourceFacts,
    check_dependency,
    dependency_outcome,
    source_facts,
)
from edge_runtime.core._effects import Append
from edge_runtime.core._errors import CoreError, UnknownEntity
from edge_runtime.core._flow import Flow
from edge_runtime.core._state import FacilityState, WorkflowRun
from topics import HubCommand

__all__ = ["WorkflowDeps", "is_typed"]


_NEEDS_DATA = frozenset({"conditional", "data_flow"})
"""Types whose rule reads the source's data and outputs (gone once it is archived)."""


def is_typed(state: FacilityState, type: str, facility: str | None) -> bool:
    """Whether a dependency is a ``deps`` entry (else it is a plain local ``depends_on``)."""
    return type != "sequential" or (facility is not None and facility != state.facility)


class WorkflowDeps:
    """Adds, decides and resolves typed and external dependencies between workflows."""

    def __init__(self, flow: Flow,
                 check_cycle: Callable[[FacilityState, str, WorkflowRun], None]) -> None:
        self.flow = flow
        self.check_cycle = check_cycle
        """Refuses ``source -> target`` closing a cycle among this facility's workflows
        (``_commands``: the one plain dependencies use, so both kinds are checked as one
        graph)."""

    def actions(self) -> dict[str, Callable[[Context, HubCommand], dict[str, Any]]]:
        """The hub command actions this component serves."""
        return {"resolve_dependency": self.resolve}

    # --- adding ----------------------------------------------------------------------------

    def entries(self, state: FacilityState, target_id: str, target: WorkflowRun | None,
                specs: Iterable[DependencySpec | DependencyArgs]) -> list[dict[str, Any]]:
        """The ``dependency_added``/``workflow_created`` entries of the typed ``specs`` of
        ``target_id`` (``target``: ``None`` while it is being created); a ``CoreError``,
        before anything is emitted, for a bad shape, a cycle, a duplicate, a source that
        cannot be depended on, or one that already fails the target."""
        out: list[dict[str, Any]] = []
        seen: set[tuple[str, str | None]] = set()
        for spec in specs:
            assert spec.depends_on is not None
            facility = None if spec.facility == state.facility else spec.facility
            check_dependency(spec.type, spec.conditions)
            ref = f"{facility or state.facility}/{spec.depends_on}"
            key = (spec.depends_on, facility)
            if key in seen or (target is not None and _has(state, target, *key)):
                raise CoreError(f"workflow {target_id} already depends on {ref}")
            seen.add(key)
            if facility is None:
                self._check_local(state, target_id, target, spec, ref)
            elif target is not None and target.state != "pending":
                raise CoreError(f"workflow {target_id} already started ({target.state})")
            out.append({"depends_on": spec.depends_on, "type": spec.type,
                        "conditions": dict(spec.conditions), "facility": facility})
        return out

    def for_create(self, state: FacilityState, a: CreateArgs) -> tuple[list[str],
                                                                      list[dict[str, Any]]]:
        """``create_workflow``'s dependencies: the plain ones (``depends_on`` and plain
        ``dependencies``, in order, once each) and the typed entries; ``CoreError`` first."""
        plain = list(dict.fromkeys(a.depends_on))
        typed: list[DependencySpec] = []
        for spec in a.dependencies:
            if is_typed(state, spec.type, spec.facility):
                typed.append(spec)
                continue
            check_dependency(spec.type, spec.conditions)
            if spec.depends_on in plain:
                raise CoreError(f"workflow {a.workflow_id} already depends on "
                                f"{state.facility}/{spec.depends_on}")
            plain.append(spec.depends_on)
        for spec in typed:
            if spec.depends_on in plain and spec.facility in (None, state.facility):
                raise CoreError(f"workflow {a.workflow_id} already depends on "
                                f"{state.facility}/{spec.depends_on}")
        return plain, self.entries(state, a.workflow_id, None, typed)

    def _check_local(self, state: FacilityState, target_id: str, target: WorkflowRun | None,
                     spec: DependencySpec | DependencyArgs, ref: str) -> None:
        """A local source must exist, not close a cycle, and not fail the target now."""
        assert spec.depends_on is not None
        src = state.workflows.get(spec.depends_on)
        if src is None:
            archived = state.archived.get(spec.depends_on)
            if archived is None:
                raise UnknownEntity(f"unknown workflow {spec.depends_on!r}")
            if spec.type in _NEEDS_DATA:
                raise CoreError(f"workflow {spec.depends_on} is {archived} and archived: a "
                                f"{spec.type} dependency needs its data in memory")
        elif target is not None:
            self.check_cycle(state, spec.depends_on, target)
        outcome = dependency_outcome(spec.type, spec.conditions,
                                     _facts(state, spec.depends_on), ref)
        if outcome.verdict == "fail":
            raise CoreError(f"workflow {target_id} cannot depend on {ref}: {outcome.reason}")
        if target is not None and target.state != "pending" and outcome.verdict != "release":
            raise CoreError(f"workflow {target_id} already started ({target.state})")

    def add(self, ctx: Context, wf: WorkflowRun, a: DependencyArgs) -> dict[str, Any] | None:
        """``add_dependency`` of a typed or external dependency (``None``: a plain one,
        left to the caller, after refusing one that repeats a typed entry)."""
        state = ctx.state
        assert a.depends_on is not None
        if not is_typed(state, a.type, a.facility):
            if a.conditions:
                raise BadArguments("sequential dependency takes no conditions")
            if _has(state, wf, a.depends_on, None):
                raise CoreError(f"workflow {wf.id} already depends on "
                                f"{state.facility}/{a.depends_on}")
            return None
        [entry] = self.entries(state, wf.id, wf, [a])
        ctx.emit("dependency_added", wf.id, entry)
        self.evaluate(ctx, wf)
        return {"workflow_id": wf.id, "state": wf.state}

    # --- deciding --------------------------------------------------------------------------

    def evaluate(self, ctx: Context, target: WorkflowRun) -> None:
        """Decide each waiting local dependency of ``target`` that can be decided now; start
        it once all are released."""
        if target.deps is None:
            return
        state = ctx.state
        for dep, type_, conditions, facility, status in list(target.deps):
            if status != "waiting" or facility is not None:
                continue
            outcome = dependency_outcome(type_, conditions, _facts(state, dep),
                                         f"{state.facility}/{dep}")
            if outcome.verdict == "wait":
                continue
            ctx.archivable.append(dep)
            if not self._settle(ctx, target, dep, None, outcome):
                return
        self.flow.start_if_ready(ctx, target)

    def _settle(self, ctx: Context, target: WorkflowRun, dep: str, facility: str | None,
                outcome: DependencyOutcome) -> bool:
        """Record ``outcome`` of one dependency; fail or cancel the target if it says so.
        Whether the target still waits or runs (``False``: it ended)."""
        ctx.emit("dependency_resolved", target.id, {
            "depends_on": dep, "facility": facility, "verdict": outcome.verdict,
            "data": outcome.data, "reason": outcome.reason,
        })
        if outcome.verdict == "release":
            return True
        if target.state == "pending":
            kind = "workflow_failed" if outcome.verdict == "fail" else "workflow_cancelled"
            ctx.emit(kind, target.id, {"reason": outcome.reason})
            self.flow.propagate(ctx, target)
        return False

    def review(self, ctx: Context, done: int = 0) -> int:
        """After an input's decisions: look again at the pending targets of every workflow
        its events from ``effects[done]`` on touched (and of those the decisions made here
        touched), in event order. How far it looked (the next call's ``done``)."""
        effects = ctx.effects
        workflows = ctx.state.workflows
        while done < len(effects):
            touched: dict[str, None] = {}
            for effect in effects[done:]:
                if isinstance(effect, Append) and effect.event.workflow_id is not None:
                    touched[effect.event.workflow_id] = None
            done = len(effects)
            for wid in touched:
                src = workflows.get(wid)
                if src is None or not src.dependents:
                    continue
                for tid in list(src.dependents):
                    target = workflows.get(tid)
                    if (target is not None and target.deps is not None
                            and target.state == "pending"
                            and any(e[0] == wid and e[3] is None and e[4] == "waiting"
                                    for e in target.deps)):
                        self.evaluate(ctx, target)
        return done

    # --- the hub's verdict -----------------------------------------------------------------

    def resolve(self, ctx: Context, cmd: HubCommand) -> dict[str, Any]:
        """``resolve_dependency``: the hub decided an external dependency. Again, or once the
        target no longer waits: ``already`` and nothing changes."""
        a: ResolveDependencyArgs = parse_args(ResolveDependencyArgs, cmd)
        state = ctx.state
        ref = f"{a.facility}/{a.depends_on}"
        if a.data and a.verdict != "release":
            raise BadArguments("resolve_dependency args.data: only a release passes data")
        wf = state.workflows.get(a.workflow_id)
        if wf is None:
            archived = state.archived.get(a.workflow_id)
            if archived is None:
                raise UnknownEntity(f"unknown workflow {a.workflow_id!r}")
            return {"workflow_id": a.workflow_id, "already": True, "state": archived}
        entry = next((e for e in wf.deps or () if e[0] == a.depends_on and e[3] == a.facility
                      and e[3] is not None), None)
        if entry is None:
            raise UnknownEntity(f"workflow {wf.id} has no external dependency on {ref}")
        if entry[4] != "waiting" or wf.state != "pending":
            return {"workflow_id": wf.id, "already": True, "status": entry[4],
                    "state": wf.state}
        reason = a.reason or ("" if a.verdict == "release" else
                              f"dependency {ref} {'failed' if a.verdict == 'fail' else 'skipped'}")
        if self._settle(ctx, wf, a.depends_on, a.facility,
                        DependencyOutcome(a.verdict, dict(a.data), reason)):
            self.flow.start_if_ready(ctx, wf)
        return {"workflow_id": wf.id, "verdict": a.verdict, "state": wf.state}


def _has(state: FacilityState, wf: WorkflowRun, depends_on: str, facility: str | None) -> bool:
    """Whether ``wf`` already depends on ``depends_on`` (of ``facility``; ``None``: here)."""
    if facility is None and depends_on in wf.depends_on:
        return True
    return any(e[0] == depends_on and e[3] == facility for e in wf.deps or ())


def _facts(state: FacilityState, workflow_id: str) -> SourceFacts:
    """A local source's facts; an archived one is only its final state (completed ones had
    started; a cancelled one is taken as never started)."""
    src = state.workflows.get(workflow_id)
    if src is not None:
        return source_facts(src, state)
    final = state.archived.get(workflow_id, "cancelled")
    return SourceFacts(final, final == "completed", {}, {}, frozenset())
