"""A small declarative hierarchical state machine, and the workflow and step machines.

States form a tree written as nested mappings; a state's path is dotted
(``active.executing.step_validation``). A transition's source may be a parent: it then
applies to every state below it. A destination that is a parent means its first leaf;
``HISTORY`` means "the leaf remembered when the last ``remember`` transition left".
The table is compiled once into ``leaf -> event -> row`` so a transition is two dict lookups.
Machines are built per core (``workflow_machine()``, ``step_machine()``): hooks added to one
core's machine never reach another's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from edge_runtime.core._errors import IllegalTransition

__all__ = [
    "HISTORY",
    "STEP_TERMINAL",
    "WORKFLOW_TERMINAL",
    "Machine",
    "Stateful",
    "Transition",
    "step_machine",
    "workflow_machine",
]

HISTORY = "<history>"
"""Destination meaning "return to the remembered leaf" (deep history)."""

Tree = Mapping[str, "Tree"]
Hook = Callable[[Any, str, str], None]


class Stateful(Protocol):
    """Anything a machine drives: a current leaf path and a remembered one."""

    id: str
    state: str
    history: str | None


@dataclass(frozen=True, slots=True)
class Transition:
    """``event`` moves any leaf under ``source`` to ``dest``."""

    event: str
    source: str | tuple[str, ...]
    dest: str
    remember: bool = False
    """Remember the leaf being left (for a later ``HISTORY`` destination)."""
    internal: bool = False
    """Fired by the engine itself, not by commands; left out of "it accepts" messages."""


class Machine:
    """A compiled hierarchical machine; instances of it are plain objects (``Stateful``)."""

    def __init__(
        self, name: str, tree: Tree, transitions: Sequence[Transition], initial: str
    ) -> None:
        self.name = name
        """Word used in messages (``workflow``, ``step``)."""
        self.leaves: tuple[str, ...] = tuple(_leaves(tree, ""))
        """Every leaf state, as dotted paths, in tree order."""
        self.states: tuple[str, ...] = tuple(_all_states(tree, ""))
        self._first_leaf = {s: next(x for x in self.leaves if _under(x, s)) for s in self.states}
        self.initial: str = self._first_leaf[initial]
        self._table: dict[str, dict[str, tuple[str, bool]]] = {leaf: {} for leaf in self.leaves}
        for t in transitions:
            sources = (t.source,) if isinstance(t.source, str) else t.source
            dest = t.dest if t.dest == HISTORY else self._resolve(t.dest)
            for source in sources:
                self._resolve(source)
                for leaf in self.leaves:
                    if _under(leaf, source):
                        # First definition wins, so a child's own row overrides its parent's.
                        self._table[leaf].setdefault(t.event, (dest, t.remember))
        self._internal = frozenset(t.event for t in transitions if t.internal)
        self._before: dict[str, list[Hook]] = {}
        self._after: dict[str, list[Hook]] = {}

    def _resolve(self, state: str) -> str:
        if state not in self._first_leaf:
            raise ValueError(f"{self.name} machine has no state {state!r}")
        return self._first_leaf[state]

    def on(self, event: str, *, before: Hook | None = None, after: Hook | None = None) -> None:
        """Add a pre hook (may raise to refuse) and/or a post hook for ``event``."""
        if before is not None:
            self._before.setdefault(event, []).append(before)
        if after is not None:
            self._after.setdefault(event, []).append(after)

    def accepts(self, state: str) -> tuple[str, ...]:
        """Events an operator may send in leaf ``state`` (internal ones left out), in order."""
        return tuple(e for e in self._table[state] if e not in self._internal)

    def check(self, obj: Stateful, event: str) -> None:
        """Raise ``IllegalTransition`` naming the state and the accepted events, if refused."""
        if event not in self._table[obj.state]:
            accepted = ", ".join(self.accepts(obj.state)) or (
                "nothing for now (it waits for its agents)" if self._table[obj.state]
                else "nothing (it is final)")
            raise IllegalTransition(
                f"{self.name} {obj.id} is in {obj.state}; it accepts: {accepted} (not {event})"
            )

    def fire(self, obj: Stateful, event: str) -> str:
        """Run ``event`` on ``obj`` atomically (pre hooks, move, post hooks); the new leaf."""
        row = self._table[obj.state].get(event)
        if row is None:
            self.check(obj, event)
        assert row is not None
        dest, remember = row
        source = obj.state
        history = obj.history
        if dest == HISTORY:
            dest = history or self.initial
            history = None
        elif remember:
            history = source
        hooks = self._before.get(event)
        if hooks:
            for hook in hooks:  # may raise to refuse: nothing has changed yet
                hook(obj, source, dest)
        obj.history = history
        obj.state = dest
        hooks = self._after.get(event)
        if hooks:
            for hook in hooks:
                hook(obj, source, dest)
        return dest


def _under(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith(ancestor + ".")


def _leaves(tree: Tree, prefix: str) -> list[str]:
    out: list[str] = []
    for name, children in tree.items():
        path = prefix + name
        out.extend(_leaves(children, path + ".") if children else [path])
    return out


def _all_states(tree: Tree, prefix: str) -> list[str]:
    out: list[str] = []
    for name, children in tree.items():
        out.append(prefix + name)
        out.extend(_all_states(children, prefix + name + "."))
    return out


_LEAF: Tree = {}

WORKFLOW_TREE: Tree = {
    "pending": _LEAF,
    "active": {
        "initializing": _LEAF,
        "executing": {
            "step_preparation": _LEAF,
            "step_execution": _LEAF,
            "step_validation": _LEAF,
            "step_cleanup": _LEAF,
        },
        "waiting_for_resource": _LEAF,
        "synchronizing": _LEAF,
    },
    "pausing": _LEAF,
    "paused": _LEAF,
    "cancelling": _LEAF,
    "completed": _LEAF,
    "failed": _LEAF,
    "cancelled": _LEAF,
}
"""docs/design.md §5's hierarchy, with the two transient states of docs/decisions.md ("Cancel and
pause mean what the robot did"): ``pausing`` beside ``paused`` (it remembers the active
substate as ``paused`` does) and ``cancelling`` before ``cancelled``, each held until every
agent holding one of the workflow's steps confirmed."""

WORKFLOW_TRANSITIONS: tuple[Transition, ...] = (
        Transition("start", "pending", "active.initializing", internal=True),
        # The executing substate summarises the running steps: these move between them.
        Transition("prepare", "active", "active.executing.step_preparation", internal=True),
        Transition("execute", "active", "active.executing.step_execution", internal=True),
        Transition("validate", "active", "active.executing.step_validation", internal=True),
        Transition("clean_up", "active", "active.executing.step_cleanup", internal=True),
        Transition("wait_resource", "active", "active.waiting_for_resource", internal=True),
        Transition("synchronize", "active", "active.synchronizing", internal=True),
        Transition("complete", "active", "completed", internal=True),
        Transition("pause", "active", "paused", remember=True),
        # Agents hold steps: paused once each confirmed (the history is kept meanwhile).
        Transition("begin_pause", "active", "pausing", remember=True, internal=True),
        Transition("paused", "pausing", "paused", internal=True),
        Transition("resume", ("paused", "pausing"), HISTORY),
        Transition(
            "restore", ("active", "paused", "failed"), "active.initializing", internal=True
        ),
        Transition("cancel", ("pending", "active", "paused", "pausing"), "cancelled"),
        # Agents hold steps: cancelled once each confirmed it stopped (or its step ended).
        Transition("begin_cancel", ("active", "paused", "pausing"), "cancelling", internal=True),
        Transition("cancelled", "cancelling", "cancelled", internal=True),
        Transition("fail", ("pending", "active", "paused", "pausing"), "failed"),
        Transition("recover", "failed", "active.initializing"),
)
"""The workflow machine's transitions (docs/design.md §5)."""


def workflow_machine() -> Machine:
    """A new workflow machine (docs/design.md §5) with hooks of its own: each core has one."""
    return Machine("workflow", WORKFLOW_TREE, WORKFLOW_TRANSITIONS, initial="pending")


WORKFLOW_TERMINAL = frozenset({"completed", "failed", "cancelled"})

STEP_TREE: Tree = {
    name: _LEAF
    for name in (
        "pending", "ready", "allocating", "assigned", "preparing", "executing",
        "validating", "cleanup", "cancelling", "done", "failed", "skipped", "compensated",
    )
}

_RUNNING = ("allocating", "assigned", "preparing", "executing", "validating", "cleanup")

STEP_TRANSITIONS: tuple[Transition, ...] = (
        Transition("ready", "pending", "ready"),
        Transition("allocate", "ready", "allocating"),
        Transition("assign", "allocating", "assigned"),
        Transition("prepare", "assigned", "preparing"),
        Transition("execute", ("ready", "preparing"), "executing"),
        Transition("validate", "executing", "validating"),
        Transition("clean_up", "validating", "cleanup"),
        Transition("finish", "cleanup", "done"),
        # Told to stop: until its agent confirms. Confirmed: ``requeue``; the agent refused:
        # back where it was; it finished or failed anyway: ``finish``/``fail``.
        Transition("withdraw", _RUNNING[1:], "cancelling", remember=True),
        Transition("go_on", "cancelling", HISTORY),
        Transition("finish", "cancelling", "done"),
        Transition("fail", ("pending", "ready", *_RUNNING, "cancelling"), "failed"),
        Transition("skip", ("pending", "ready", "allocating", "failed"), "skipped"),
        Transition("retry", "failed", "pending"),
        # Agent lost, checkpoint restore: an unfinished step goes back to the start.
        Transition("requeue", ("ready", *_RUNNING, "cancelling"), "pending"),
        Transition("compensate", "done", "compensated"),
        Transition("reset", ("done", "failed", "skipped", "compensated"), "pending"),
)
"""A step's own lifecycle (docs/design.md §5)."""


def step_machine() -> Machine:
    """A new step machine with hooks of its own: each core has one."""
    return Machine("step", STEP_TREE, STEP_TRANSITIONS, initial="pending")

STEP_TERMINAL = frozenset({"done", "skipped", "compensated"})
"""Step states that let dependants go on (``failed`` waits for a retry or an operator)."""
