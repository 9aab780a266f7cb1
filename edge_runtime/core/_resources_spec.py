"""The template side of resources held across steps: ``Step.hold_until``, and its checks.

A step's ``resources`` are held while the step runs. A real process often needs a zone for
longer — a robot drives into zone A, then needs door B while still in A — so a step may say
``hold_until: {zone_a: leave_a}``: the resource it acquires stays held by the workflow until
the later step ``leave_a`` ends (``edge_runtime.core._resources``). Checked strictly when the
template loads, so that a span always ends: the resource must be one of the step's own, the
step must be done by an agent (only those acquire resources), and the later step must be a
successor of it in the dependency graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import networkx as nx

if TYPE_CHECKING:
    from edge_runtime.core._template import Step

__all__ = ["check_holds"]

_AGENT_KINDS = ("robot", "human", "ai")


def check_holds(steps: Sequence[Step], graph: nx.DiGraph[str]) -> None:
    """Raise ``ValueError`` (naming the field) for a ``hold_until`` that cannot work.

    ``graph`` is the template's acyclic dependency graph (an edge runs from a step to each
    step that waits for it)."""
    for i, step in enumerate(steps):
        for res, until in step.hold_until.items():
            where = f"steps[{i}].hold_until.{res}"
            if step.kind not in _AGENT_KINDS:
                raise ValueError(f"{where}: only steps done by an agent acquire resources")
            if res not in step.resources:
                raise ValueError(f"{where}: {res!r} is not one of the step's resources")
            if until not in graph:
                raise ValueError(f"{where}: unknown step {until!r}")
            if until == step.id or not nx.has_path(graph, step.id, until):
                raise ValueError(f"{where}: {until!r} is not a later step (it must come after "
                                 f"{step.id!r} in the dependency graph)")
