"""Workflow templates (docs/design.md §5): versioned YAML/JSON documents validated into
pydantic models.

A template lists steps; dependencies are written on the step that waits:

- ``after``: sequential (one predecessor) and parallel fork/join (several steps share a
  predecessor; a step after several waits for all of them);
- ``when``: conditional, a CEL expression on ``data`` and ``outputs`` (false → skipped);
- ``resources``: resource-based, the step starts only when every named resource is free and
  holds them until it ends;
- ``inputs``: data flow, ``{name: "step.output"}``; the step waits for that step and gets
  the value in ``Assign.inputs``.

Decision steps choose a branch (``then`` / ``else``); the other branch is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal, TypedDict

import networkx as nx
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from edge_runtime.core._alloc_spec import AllocationPolicy
from edge_runtime.core._coalition_spec import TeamMember, check_team
from edge_runtime.core._consensus_spec import VoteSpec, check_vote
from edge_runtime.core._errors import TemplateError
from edge_runtime.core._expr import ExpressionError, compile_expression
from edge_runtime.core._hierarchy_spec import CompositeSpec, check_composite
from edge_runtime.core._resources_spec import check_holds
from edge_runtime.core._strategies_config import (
    Strategy,
    check_alternatives,
    check_strategies,
)
from topics import Identifier

__all__ = [
    "AGENT_STEP_KINDS",
    "AgentPolicy",
    "Compensation",
    "Protocol",
    "RetryPolicy",
    "Step",
    "StepKind",
    "Template",
    "parse_template",
]

StepKind = Literal["robot", "human", "ai", "sync", "decision", "wait"]
Protocol = Literal["direct", "auction_based", "leader_follower", "consensus", "hierarchical"]
"""How a workflow's steps find their agents (docs/coordination.md): ``direct`` — the
cheapest able agent; the others are the multi-agent protocols of docs/design.md §6."""
AGENT_STEP_KINDS = frozenset({"robot", "human", "ai"})
"""Step kinds carried out by an agent (allocated, assigned, reported on)."""

_Seconds = float


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class RetryPolicy(_Model):
    """How a failed step is retried (Temporal's names; intervals in seconds)."""

    max_attempts: int = Field(default=3, ge=1, le=1000)
    """Attempts in all, the first included; 1 means never retry."""
    initial_interval: _Seconds = Field(default=1.0, ge=0, le=86400)
    backoff_coefficient: float = Field(default=2.0, ge=1, le=100)
    max_interval: _Seconds = Field(default=60.0, ge=0, le=86400)
    non_retryable_errors: tuple[Identifier, ...] = ()
    """``StepFailed.error_type`` values that fail the step at once."""

    def delay(self, failures: int) -> float:
        """Backoff before the attempt that follows failure number ``failures`` (from 1)."""
        raw = self.initial_interval * self.backoff_coefficient ** (failures - 1)
        return float(min(raw, self.max_interval))


class AgentPolicy(_Model):
    """Which agents may take a step (docs/design.md §6 allocation policy; Open-RMF users ask for
    it: rmf_task#127, rmf_core#276)."""

    allowed: tuple[Identifier, ...] = Field(default=(), max_length=256)
    """Only these agents (empty: any able agent)."""
    forbidden: tuple[Identifier, ...] = Field(default=(), max_length=256)
    """Never these agents."""
    preferred: tuple[Identifier, ...] = Field(default=(), max_length=256)
    """These first, whatever the cost, when one of them is free; else the cheapest other."""

    @model_validator(mode="after")
    def _consistent(self) -> AgentPolicy:
        for name, ids in (("allowed", self.allowed), ("preferred", self.preferred)):
            clash = sorted(set(ids) & set(self.forbidden))
            if clash:
                raise ValueError(f"{', '.join(clash)} both {name} and forbidden")
        if self.allowed:
            stray = sorted(set(self.preferred) - set(self.allowed))
            if stray:
                raise ValueError(f"{', '.join(stray)} preferred but not allowed")
        return self


class Compensation(_Model):
    """The step that undoes a completed step during a rollback (saga)."""

    kind: Literal["robot", "human", "ai"]
    action: Identifier | None = None
    capabilities: tuple[Identifier, ...] = ()
    location: Identifier | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float | None = Field(default=None, gt=0, le=1e7)


class Step(_Model):
    """One step of a template."""

    id: Identifier
    kind: StepKind
    description: str = Field(default="", max_length=1024)
    capabilities: tuple[Identifier, ...] = ()
    location: Identifier | None = None
    """Node of the facility map where the step happens."""
    action: Identifier | None = None
    """What the agent does (VDA 5050 ``actionType`` for robots, e.g. ``pick``/``drop``)."""
    params: dict[str, Any] = Field(default_factory=dict)
    estimated_duration_s: float = Field(default=60.0, ge=0, le=1e7)
    timeout_s: float | None = Field(default=None, gt=0, le=1e7)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    compensation: Compensation | None = None
    agents: AgentPolicy = Field(default_factory=AgentPolicy)
    """Allowed, forbidden and preferred agents (``edge_runtime.core._allocation``)."""
    safety: tuple[Identifier, ...] = ()
    """Safety tags, e.g. ``exclusive_zone``. Recorded with the step; the safety rules
    (docs/coordination.md) read the map's zones and agents' states, not these tags yet."""
    after: tuple[Identifier, ...] = ()
    when: str | None = Field(default=None, max_length=1024)
    resources: tuple[Identifier, ...] = ()
    hold_until: dict[Identifier, Identifier] = Field(default_factory=dict, max_length=64)
    """Resources held past this step: ``{resource: later_step}`` keeps the resource held by
    the workflow until that later step ends (``_resources_spec``, ``_resources``)."""
    alternatives: dict[Identifier, tuple[Identifier, ...]] = Field(
        default_factory=dict, max_length=64)
    """Other resources that serve instead of one it claims (``{zone_a: [zone_b]}``): what
    the ``negotiation`` and ``reallocation`` strategies may move the claim to."""
    inputs: dict[Identifier, str] = Field(default_factory=dict)
    """Data flow: ``{local_name: "step_id.output_name"}``."""
    outputs: tuple[Identifier, ...] = ()
    """Outputs the step must report; checked at validation (missing → the step fails)."""
    sets: dict[Identifier, Identifier] = Field(default_factory=dict, max_length=64)
    """Workflow variables the step writes when done: ``{variable: output}``, each output
    one of ``outputs`` (``edge_runtime.core._consistency``: concurrent writes)."""
    condition: str | None = Field(default=None, max_length=1024)
    """Decision steps: CEL on ``data`` and ``outputs``."""
    then: tuple[Identifier, ...] = Field(default=(), alias="then")
    otherwise: tuple[Identifier, ...] = Field(default=(), alias="else")
    duration_s: float | None = Field(default=None, ge=0, le=1e7)
    """Wait steps: how long."""
    signal: Identifier | None = None
    """Wait steps: the operator signal that ends the wait."""
    participants: tuple[Identifier, ...] = ()
    """Sync steps: the steps whose agents must all arrive at the barrier."""
    team: tuple[TeamMember, ...] = Field(default=(), max_length=64)
    """Coalition steps: the members it needs at once (``_coalition_spec``); empty: one agent."""
    vote: VoteSpec | None = None
    """Decision steps: put to a vote of agents when the workflow runs ``consensus``
    (``_consensus_spec``)."""
    composite: CompositeSpec | None = None
    """A step its agent (a team lead) splits among a team when the workflow runs
    ``hierarchical`` (``_hierarchy_spec``)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True
    )


class Template(_Model):
    """A versioned workflow template."""

    name: Identifier
    version: int = Field(default=1, ge=1, le=1_000_000)
    description: str = Field(default="", max_length=4096)
    coordination: Protocol = "direct"
    """The allocation protocol of its workflows (a workflow may override it when created,
    and a hub ``set_coordination`` later)."""
    on_failure: Literal["fail", "compensate"] = "fail"
    """What a workflow does when it fails: just fail, or first roll back (saga)."""
    data: dict[str, Any] = Field(default_factory=dict)
    """Default workflow variables; a workflow's own ``data`` overrides them key by key."""
    conflict_strategies: dict[str, Strategy] = Field(default_factory=dict, max_length=16)
    """Rule or conflict type -> strategy for contention conflicts its workflows' claims
    raise; overrides ``CoreConfig.conflict_strategies`` (``_strategies_config``)."""
    steps: tuple[Step, ...] = Field(min_length=1, max_length=256)
    allocation: AllocationPolicy = Field(default_factory=AllocationPolicy)
    """Overrides of the facility's work-queue policy for its steps (``_alloc_spec``)."""

    # Read through ``__pydantic_private__`` (a slot) in the hot lookups below: a plain
    # ``self._index`` goes through pydantic's ``__getattr__``, ~1.5 µs a call.
    _index: dict[str, int] = PrivateAttr(default_factory=dict)
    _preds: dict[str, tuple[str, ...]] = PrivateAttr(default_factory=dict)
    _branch_of: dict[str, str] = PrivateAttr(default_factory=dict)
    _sync_of: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check_graph(self) -> Template:
        check_strategies(self.conflict_strategies)
        index: dict[str, int] = {}
        for i, step in enumerate(self.steps):
            if step.id in index:
                raise ValueError(f"steps[{i}].id: duplicate step id {step.id!r}")
            if "." in step.id or len(step.id) > 59:
                # '.' and 5 spare characters name compensation steps (``<id>.undo``).
                raise ValueError(f"steps[{i}].id: {step.id!r} must be ≤59 characters, no '.'")
            index[step.id] = i
        preds: dict[str, list[str]] = {s.id: [] for s in self.steps}
        branch_of: dict[str, str] = {}
        sync_of: dict[str, str] = {}

        def ref(i: int, field: str, target: str) -> str:
            if target not in index:
                raise ValueError(f"steps[{i}].{field}: unknown step {target!r}")
            if target == self.steps[i].id:
                raise ValueError(f"steps[{i}].{field}: a step cannot depend on itself")
            return target

        for i, step in enumerate(self.steps):
            mine = preds[step.id]
            for p in step.after:
                mine.append(ref(i, "after", p))
            for name, source in step.inputs.items():
                sid, dot, out = source.partition(".")
                if not dot or not out:
                    raise ValueError(f"steps[{i}].inputs.{name}: write 'step_id.output_name'")
                mine.append(ref(i, f"inputs.{name}", sid))
            for p in step.participants:
                mine.append(ref(i, "participants", p))
                if self.steps[index[p]].team:
                    raise ValueError(f"steps[{i}].participants: {p!r} is a coalition step "
                                     "(its members meet at the step itself)")
                if self.steps[index[p]].kind not in AGENT_STEP_KINDS:
                    raise ValueError(f"steps[{i}].participants: {p!r} is not done by an agent")
                if p in sync_of:
                    # Assign.sync_point names one barrier: an agent cannot wait at two.
                    raise ValueError(f"steps[{i}].participants: {p!r} already takes part in "
                                     f"sync step {sync_of[p]!r}")
                sync_of[p] = step.id
            self._check_kind(i, step)
            check_team(i, step)
            check_alternatives(i, step.resources, step.alternatives)
            if step.vote is not None:
                check_vote(i, step.vote, self.steps, index)
            if step.composite is not None:
                check_composite(i, step.kind, step.composite)
            for field in ("then", "otherwise"):
                for target in getattr(step, field):
                    ref(i, "else" if field == "otherwise" else field, target)
                    if target in branch_of:
                        raise ValueError(f"steps[{i}].{field}: {target!r} is in two branches")
                    branch_of[target] = step.id
                    preds[target].append(step.id)
            for field, expr in (("when", step.when), ("condition", step.condition)):
                if expr is not None:
                    try:
                        compile_expression(expr)
                    except ExpressionError as exc:
                        raise ValueError(f"steps[{i}].{field}: {exc}") from None
        graph: nx.DiGraph[str] = nx.DiGraph()
        graph.add_nodes_from(index)
        graph.add_edges_from((p, s) for s, ps in preds.items() for p in ps)
        try:
            cycle = nx.find_cycle(graph)
        except nx.NetworkXNoCycle:
            cycle = None
        if cycle:
            names = [edge[0] for edge in cycle] + [cycle[0][0]]
            raise ValueError(f"steps: dependency cycle {' -> '.join(names)}")
        check_holds(self.steps, graph)
        self._index = index
        self._preds = {s: tuple(dict.fromkeys(ps)) for s, ps in preds.items()}
        self._branch_of = branch_of
        self._sync_of = sync_of
        return self

    @staticmethod
    def _check_kind(i: int, step: Step) -> None:
        where = f"steps[{i}]"
        for name, output in step.sets.items():
            if step.kind not in AGENT_STEP_KINDS:
                raise ValueError(f"{where}.sets: only agent steps write workflow variables")
            if output not in step.outputs:
                raise ValueError(f"{where}.sets.{name}: {output!r} is not one of its outputs")
        if step.kind == "decision" and step.condition is None and step.vote is None:
            raise ValueError(f"{where}.condition: a decision step needs a condition or a vote")
        if step.kind != "decision" and step.vote is not None:
            raise ValueError(f"{where}.vote: only decision steps are voted on")
        if step.kind != "decision" and (step.condition or step.then or step.otherwise):
            raise ValueError(f"{where}.condition: only decision steps have condition/then/else")
        if step.kind == "wait" and (step.duration_s is None) == (step.signal is None):
            raise ValueError(f"{where}.duration_s: a wait step needs a duration_s or a signal")
        if step.kind == "sync" and len(step.participants) < 2:
            raise ValueError(f"{where}.participants: a sync step needs at least two")
        if step.kind != "sync" and step.participants:
            raise ValueError(f"{where}.participants: only sync steps have participants")

    @property
    def key(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    def step(self, step_id: str) -> Step:
        """The step ``step_id`` (``KeyError`` if unknown)."""
        return self.steps[_private(self)["_index"][step_id]]

    def position(self, step_id: str) -> int:
        """Where ``step_id`` stands in ``steps`` (allocation order among a workflow's steps);
        a compensation step (not declared) comes after every declared one."""
        return _private(self)["_index"].get(step_id, 1000 + len(step_id))

    def branch_owner(self, step_id: str) -> str | None:
        """The decision step whose ``then``/``else`` branch holds ``step_id``, if any."""
        return _private(self)["_branch_of"].get(step_id)

    def sync_point(self, step_id: str) -> str | None:
        """The sync step whose ``participants`` list ``step_id``, if any (at most one)."""
        return _private(self)["_sync_of"].get(step_id)

    def predecessors(self, step_id: str) -> tuple[str, ...]:
        """Steps that must end before ``step_id`` may start (every dependency type)."""
        return _private(self)["_preds"][step_id]


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_template(source: str | Mapping[str, Any], where: str = "") -> Template:
    """Validate a template from a mapping or a YAML/JSON text (no file is read here:
    ``edge_runtime.templates`` loads files).

    Any problem raises ``TemplateError`` naming the bad field's path, e.g.
    ``steps[1].retry.max_attempts: Input should be greater than or equal to 1``;
    ``where`` (e.g. ``"pick.yaml: "``) starts the message.
    """
    if isinstance(source, str):
        try:
            doc = json.loads(source) if source.lstrip().startswith("{") else yaml.safe_load(source)
        except (ValueError, yaml.YAMLError) as exc:
            raise TemplateError(f"{where}not valid YAML/JSON: {_one_line(exc)}") from None
    else:
        doc = source
    if not isinstance(doc, Mapping):
        raise TemplateError(f"{where}a template is a mapping with name, version and steps")
    try:
        return Template.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = str(err["msg"]).removeprefix("Value error, ")
        path = _path(tuple(err["loc"]))
        raise TemplateError(f"{where}{path}: {msg}" if path else f"{where}{msg}") from None


class _Graph(TypedDict):
    """A validated template's private attributes (its dependency graph, indexed)."""

    _index: dict[str, int]
    _preds: dict[str, tuple[str, ...]]
    _branch_of: dict[str, str]
    _sync_of: dict[str, str]


def _private(template: Template) -> _Graph:
    """The template's private attributes (always set once it is validated)."""
    return template.__pydantic_private__  # type: ignore[return-value]


def _one_line(exc: Exception) -> str:
    """A YAML error as one line, where it is first (YAML's own text spans several lines)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is not None and problem:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return " ".join(str(exc).split())
