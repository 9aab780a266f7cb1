"""Resources held across steps, acquired in a global order (docs/design.md §6 deadlock prevention).

A step's ``resources`` are acquired atomically when it is assigned. With ``hold_until``
(``_resources_spec``) some stay held by the workflow past the step — a *span* — until a
later step ends, so a workflow may hold one zone while it waits for the next: hold-and-wait,
the precondition of a deadlock. Two workflows, one holding zone ``z1`` and then needing
``z2``, the other holding ``z2`` and then needing ``z1``, would wait for each other forever.

Prevention (``CoreConfig.resource_order``, on by default): resources have a global order
(names sorted, or the facility's list), and a workflow must only request resources ordered
after everything it holds across steps. A step that starts a span looks at what the steps
inside the span will request (the steps on a path from it to the span's end, nested spans
followed); every resource ordered before the highest one the workflow will then hold is
claimed *now*, atomically with the step's own, and held until the end of the span that needs
it. Two workflows then always meet in the same order, and one of them simply waits first.
What the ordering cannot see (an operator's ``add_dependency`` after the span began, or the
ordering switched off) the wait-for graph catches (``_deadlock``).

The decision is recorded in ``step_assigned`` as ``holds: {resource: end step}`` (only when
something is held past the step), so the applier never plans anything.
"""

from __future__ import annotations

from edge_runtime.core._state import FacilityState, StepRun, WorkflowRun

__all__ = ["Resources", "descendants", "later", "steps_between"]

_OVER = ("done", "skipped", "compensated")
"""Step states after which a step requests nothing more and ends no span."""


class Resources:
    """Plans what a step must acquire, and whether it may have it now."""

    def __init__(self, order: bool | tuple[str, ...] = True) -> None:
        self.ordered = order is not False
        """Claim out-of-order resources at the start of a span (prevention)."""
        self._listed: dict[str, int] = (
            {r: i for i, r in enumerate(order)} if isinstance(order, tuple) else {})

    def rank(self, resource: str) -> tuple[int, str]:
        """Where ``resource`` stands in the global order (lower is acquired first)."""
        return self._listed.get(resource, len(self._listed)), resource

    def plan(self, wf: WorkflowRun, st: StepRun) -> tuple[list[str], dict[str, str]]:
        """What assigning ``st`` takes: every resource it must hold now (its own first), and
        those held past it, each with the step whose end releases it."""
        spec = st.spec
        needs = list(spec.resources)
        hold_until = spec.hold_until
        if not hold_until:
            return needs, {}
        spans = wf.spans
        keep: dict[str, str] = {}
        steps = wf.steps
        for res, end in hold_until.items():
            # Not when the end step is over already (skipped by an operator, say), nor when
            # a contention strategy swapped the resource away.
            if res in spec.resources and steps[end].state not in _OVER:
                old = spans.get(res)
                keep[res] = end if old is None else later(wf, old[1], end)
        if not self.ordered or not keep:
            return needs, keep
        top = max(self.rank(r) for r in [*spans, *keep])
        rank = self.rank
        for sid, end in _region(wf, st).items():
            if steps[sid].state in _OVER or steps[end].state in _OVER:
                continue
            for res in steps[sid].spec.resources:
                if res in spans or rank(res) >= top:
                    continue  # held already, or in order
                if res not in needs:
                    needs.append(res)
                keep[res] = end if res not in keep else later(wf, keep[res], end)
        return needs, keep

    def free(self, state: FacilityState, wf: WorkflowRun, st: StepRun,
             needs: list[str]) -> bool:
        """Whether every resource in ``needs`` may go to ``st`` now: free, or held across
        steps by its own workflow and not in use by another of its running steps."""
        holds = state.holds
        lent = state.lent_resources
        for res in needs:
            if lent and res in lent:
                return False  # lent to another facility (``_lending``)
            holder = holds.get(res)
            if holder is None:
                continue
            if holder[0] != wf.id or res not in wf.spans:
                return False
            other = wf.steps.get(holder[1])
            if other is not None and other is not st and other.agent is not None:
                return False
        return True

    def blockers(self, state: FacilityState, wf: WorkflowRun, st: StepRun) -> list[str]:
        """Resources ``st`` waits for that another workflow holds across steps, in the order
        ``plan`` lists them (``_deadlock``: the edges of the wait-for graph)."""
        holds = state.holds
        workflows = state.workflows
        out: list[str] = []
        for res in self.plan(wf, st)[0]:
            holder = holds.get(res)
            if holder is not None and holder[0] != wf.id:
                other = workflows.get(holder[0])
                if other is not None and res in other.spans:
                    out.append(res)
        return out


def _children(wf: WorkflowRun) -> dict[str, list[str]]:
    """Step -> the steps that wait for it (the runtime graph: operators may add edges)."""
    children: dict[str, list[str]] = {sid: [] for sid in wf.steps}
    for sid, st in wf.steps.items():
        if st.comp_of is None:
            for p in st.preds:
                if p in children:
                    children[p].append(sid)
    return children


def _reach(start: str, edges: dict[str, list[str]] | dict[str, tuple[str, ...]]) -> set[str]:
    """Every step reachable from ``start`` along ``edges`` (``start`` left out)."""
    seen: set[str] = set()
    todo = list(edges.get(start, ()))
    while todo:
        sid = todo.pop()
        if sid not in seen:
            seen.add(sid)
            todo.extend(edges.get(sid, ()))
    return seen


def _preds(wf: WorkflowRun) -> dict[str, tuple[str, ...]]:
    return {sid: st.preds for sid, st in wf.steps.items() if st.comp_of is None}


def descendants(wf: WorkflowRun, first: str) -> set[str]:
    """Every step that comes after ``first`` on some path (for membership tests)."""
    return _reach(first, _children(wf))


def steps_between(wf: WorkflowRun, first: str, last: str) -> list[str]:
    """Steps after ``first`` and up to ``last`` (on a path between them), in step order."""
    after = _reach(first, _children(wf))
    before = _reach(last, _preds(wf)) | {last}
    return [sid for sid in wf.steps if sid in after and sid in before]


def later(wf: WorkflowRun, a: str, b: str) -> str:
    """Of two span ends, the one that ends later: the descendant if one follows the other,
    else (parallel branches) the one declared later in the template."""
    if a == b or a in _reach(b, _preds(wf)):
        return b
    if b in _reach(a, _preds(wf)):
        return a
    position = wf.template.position
    return a if position(a) > position(b) else b


def _region(wf: WorkflowRun, st: StepRun) -> dict[str, str]:
    """Steps that will request resources while ``st``'s spans hold (nested spans followed),
    each with the latest span end it lies inside, in step order."""
    region: dict[str, str] = {}
    todo = [(st.id, end) for end in st.spec.hold_until.values()]
    while todo:
        start, end = todo.pop(0)
        for sid in steps_between(wf, start, end):
            if sid in region:
                region[sid] = later(wf, region[sid], end)
                continue
            region[sid] = end
            todo.extend((sid, later(wf, end, e)) for e in wf.steps[sid].spec.hold_until.values())
    return {sid: region[sid] for sid in wf.steps if sid in region}
