"""The rules of a dependency between workflows, as pure functions (docs/design.md §5).

A TARGET workflow may depend on a SOURCE workflow in five ways (``type``, with
``conditions`` in the seed's shape): ``sequential``, ``parallel``, ``conditional``,
``resource_based`` and ``data_flow`` (docs/workflows.md, "Dependencies"). Whether the target
may go on is decided from the source's facts alone (``SourceFacts``), by
``dependency_outcome``. The edge uses it for dependencies within its facility and the hub
for those across facilities (on its replica of the source's facility), so both sides apply
the very same rules; nothing here reads a clock or the state beyond what it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from edge_runtime.core._command_args import BadArguments
from edge_runtime.core._expr import ExpressionError, compile_expression, evaluate_condition
from edge_runtime.core._state import FacilityState, WorkflowRun

__all__ = [
    "DEPENDENCY_TYPES", "DependencyOutcome", "SourceFacts", "check_dependency",
    "dependency_outcome", "source_facts",
]

DEPENDENCY_TYPES = ("sequential", "parallel", "conditional", "resource_based", "data_flow")
"""The five types of a dependency between workflows."""

Verdict = Literal["wait", "release", "fail", "skip"]

_ENDED = frozenset({"completed", "failed", "cancelled"})
_LIMIT = 64
"""Most resources a ``resource_based`` and values a ``data_flow`` dependency may name."""


@dataclass(frozen=True, slots=True)
class SourceFacts:
    """What a dependency's outcome may depend on: the source workflow as it stands."""

    state: str
    """The workflow's state (dotted path: ``active.executing.step_execution`` …)."""
    started: bool
    """It ever left ``pending``."""
    data: Mapping[str, Any]
    outputs: Mapping[str, Mapping[str, Any]]
    """Outputs of its done steps, by step."""
    holds: frozenset[str]
    """Resources it holds now (its steps' and its spans')."""


@dataclass(frozen=True, slots=True)
class DependencyOutcome:
    """What a dependency lets the target do now."""

    verdict: Verdict
    data: dict[str, Any] = field(default_factory=dict)
    """``data_flow`` released: the values to merge into the target's data (else empty)."""
    reason: str = ""
    """Why, for ``fail`` and ``skip``."""


_WAIT = DependencyOutcome("wait")
_RELEASE = DependencyOutcome("release")
MAX_REASON = 1024
"""A reason is cut to this many characters: it travels in ``resolve_dependency.reason``."""


def _no(verdict: Verdict, reason: str) -> DependencyOutcome:
    """A ``fail`` or ``skip`` with ``reason`` (cut to ``MAX_REASON``: a 1024-character CEL
    expression named in it must not make the hub's verdict too long for the edge)."""
    return DependencyOutcome(verdict, reason=reason[:MAX_REASON])


def check_dependency(type: str, conditions: Mapping[str, Any]) -> None:
    """Refuse (``BadArguments``, a sentence naming the fault) a type or conditions that do
    not fit: unknown type, missing or extra condition, a CEL expression that does not
    compile, an empty or malformed list of resources or values."""
    if type not in DEPENDENCY_TYPES:
        raise BadArguments(f"unknown dependency type {type!r}; one of: "
                           f"{', '.join(DEPENDENCY_TYPES)}")
    if not isinstance(conditions, Mapping):
        raise BadArguments(f"{type} dependency: conditions must be an object")
    wanted = {"conditional": "when", "resource_based": "resources", "data_flow": "outputs"}
    name = wanted.get(type)
    extra = sorted(k for k in conditions if k != name)
    if extra:
        takes = f"takes only {name!r}" if name else "takes no conditions"
        raise BadArguments(f"{type} dependency {takes} (not {', '.join(map(repr, extra))})")
    if name is None:
        return
    if name not in conditions:
        raise BadArguments(f"{type} dependency needs conditions.{name}")
    value = conditions[name]
    if type == "conditional":
        if not isinstance(value, str) or not value.strip() or len(value) > 1024:
            raise BadArguments("conditional dependency: conditions.when must be a CEL "
                               "expression (1 to 1024 characters)")
        try:
            compile_expression(value)
        except ExpressionError as exc:
            raise BadArguments(f"conditional dependency: {exc}") from None
    elif type == "resource_based":
        if (not isinstance(value, list) or not 0 < len(value) <= _LIMIT
                or not all(isinstance(r, str) and 0 < len(r) <= 64 for r in value)):
            raise BadArguments("resource_based dependency: conditions.resources must list 1 "
                               f"to {_LIMIT} resource names")
    else:
        if (not isinstance(value, Mapping) or not 0 < len(value) <= _LIMIT
                or not all(isinstance(k, str) and k and isinstance(v, str)
                           for k, v in value.items())):
            raise BadArguments("data_flow dependency: conditions.outputs must map 1 to "
                               f"{_LIMIT} target data keys to '<step>.<key>' or 'data.<key>'")
        for key, ref in value.items():
            head, _, tail = ref.partition(".")
            if not head or not tail:
                raise BadArguments(f"data_flow dependency: outputs.{key} = {ref!r} is not "
                                   "'<step>.<key>' or 'data.<key>'")


def dependency_outcome(type: str, conditions: Mapping[str, Any], source: SourceFacts,
                       source_ref: str) -> DependencyOutcome:
    """The outcome of a dependency of ``type`` on ``source`` (named ``source_ref``,
    ``facility/workflow``, in reasons). ``conditions`` must have passed
    ``check_dependency``."""
    top = source.state.split(".", 1)[0]
    ended = top in _ENDED
    gone = f"dependency {source_ref} {top}"
    if type == "sequential":
        if top == "completed":
            return _RELEASE
        return _no("fail", gone) if ended else _WAIT
    if type == "parallel":
        if source.started:
            return _RELEASE
        return _no("fail", gone) if ended else _WAIT
    if type == "resource_based":
        if ended:
            return _RELEASE  # a failed source frees its resources too
        if top == "pending" or source.holds.intersection(conditions["resources"]):
            return _WAIT
        return _RELEASE
    if type == "conditional":
        if top != "completed":
            return _no("fail", gone) if ended else _WAIT
        when = conditions["when"]
        context = {"data": dict(source.data),
                   "outputs": {k: dict(v) for k, v in source.outputs.items()}}
        try:
            if evaluate_condition(when, context):
                return _RELEASE
        except ExpressionError as exc:
            return _no("fail", f"{exc} (on {source_ref})")
        return _no("skip", f"condition {when} false on {source_ref}")
    if type == "data_flow":
        merged: dict[str, Any] = {}
        for key, ref in conditions["outputs"].items():
            found, value = _lookup(ref, source)
            if not found:
                if ended:
                    return _no("fail", f"missing_input: {ref} from {source_ref}")
                return _WAIT
            merged[key] = value
        return DependencyOutcome("release", data=merged)
    raise BadArguments(f"unknown dependency type {type!r}")


def _lookup(ref: str, source: SourceFacts) -> tuple[bool, Any]:
    """``data.<key>`` in the source's data, else ``<step>.<key>`` in a done step's outputs."""
    head, _, key = ref.partition(".")
    where = source.data if head == "data" else source.outputs.get(head)
    if where is None or key not in where:
        return False, None
    return True, where[key]


def source_facts(wf: WorkflowRun, state: FacilityState) -> SourceFacts:
    """The facts of the live workflow ``wf`` of ``state`` (an edge's, or the hub's replica).

    ``started``: not pending, or, once ended, some step of it moved (a workflow failed or
    cancelled while pending never touched a step)."""
    top = wf.state.split(".", 1)[0]
    steps = wf.steps.values()
    started = top != "pending" and (top not in ("failed", "cancelled") or any(
        st.state != "pending" or st.attempt or st.done_seq for st in steps))
    outputs = {sid: st.outputs or {} for sid, st in wf.steps.items() if st.state == "done"}
    holds = set(wf.spans)
    for st in steps:
        for res in st.spec.resources:
            if state.holds.get(res) == (wf.id, st.id):
                holds.add(res)
    return SourceFacts(wf.state, started, wf.data, outputs, frozenset(holds))
