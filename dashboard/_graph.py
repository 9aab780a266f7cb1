"""Dependency graphs as Graphviz DOT (``st.graphviz_chart``): nodes are workflows
(``facility/id``) filled by state, grouped in a box per facility; an edge runs from a
source to the workflow that waits for it, labelled with its type, dashed when it crosses
facilities, red while it still holds its target. No Streamlit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["COLOURS", "Edge", "Graph", "dot", "from_dependencies", "from_workflows", "node"]

COLOURS = {
    "pending": "#d9d9d9", "active": "#9ecae1", "pausing": "#fdd0a2", "paused": "#fdae6b",
    "cancelling": "#bdbdbd", "completed": "#a1d99b", "failed": "#fc9272",
    "cancelled": "#969696",
}
"""Fill colour by top-level state (``active.executing…`` is ``active``)."""
UNKNOWN = "#ffffff"
"""A workflow the hub did not describe (another facility's, not read)."""


def node(facility: str, workflow_id: str) -> str:
    """A node's name: ``facility/workflow``."""
    return f"{facility}/{workflow_id}"


@dataclass(frozen=True, slots=True)
class Edge:
    """``target`` waits for ``source`` (both node names)."""

    source: str
    target: str
    type: str = "sequential"
    status: str = "waiting"


@dataclass
class Graph:
    """Workflows (node → state, '' when unknown) and their dependencies."""

    states: dict[str, str] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def add(self, name: str, state: str = "") -> None:
        """Add a node (a known state wins over an unknown one)."""
        if state or name not in self.states:
            self.states[name] = state or self.states.get(name, "")

    def link(self, e: Edge) -> None:
        """Add an edge (and its end nodes), once."""
        self.add(e.source)
        self.add(e.target)
        if e not in self.edges:
            self.edges.append(e)


def _facility(name: str) -> str:
    return name.split("/", 1)[0]


def from_workflows(workflows: list[dict[str, Any]]) -> Graph:
    """The graph of these workflows' own records (``depends_on``, ``dependencies``): a
    facility's, or every facility's."""
    g = Graph()
    for w in workflows:
        g.add(node(w["facility"], w["id"]), w["state"])
    for w in workflows:
        target = node(w["facility"], w["id"])
        pending = w["state"].split(".", 1)[0] == "pending"
        for src in w.get("depends_on", []):
            g.link(Edge(node(w["facility"], src), target, "sequential",
                        "waiting" if pending else "resolved"))
        for d in w.get("dependencies", []):
            g.link(Edge(node(d.get("facility") or w["facility"], d["source"]), target,
                        d.get("type", "sequential"), d.get("status", "waiting")))
    return g


def from_dependencies(deps: dict[str, Any], states: dict[str, str]) -> Graph:
    """One workflow's neighbourhood from ``GET /workflows/{id}/dependencies``: its sources
    and its dependants; ``states`` gives the nodes' states the page read (node → state)."""
    g = Graph()
    me = node(deps["facility"], deps["workflow_id"])
    g.add(me, states.get(me, ""))
    for d in deps.get("dependencies", []):
        src = node(d["facility"], d["source"])
        g.add(src, states.get(src, ""))
        g.link(Edge(src, me, d.get("type", "sequential"), d.get("status", "waiting")))
    for name in deps.get("dependants", []):
        g.add(name, states.get(name, ""))
        g.link(Edge(me, name, "dependant", "waiting"))
    return g


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot(g: Graph, *, focus: str | None = None) -> str:
    """The DOT text of ``g``: one cluster per facility, nodes filled by state (``focus``
    drawn bold), cross-facility edges dashed, edges still holding their target red."""
    lines = ["digraph dependencies {", "  rankdir=LR;",
             '  node [shape=box, style="rounded,filled", fontname="Helvetica"];',
             '  edge [fontname="Helvetica", fontsize=10];']
    by_facility: dict[str, list[str]] = {}
    for name in g.states:
        by_facility.setdefault(_facility(name), []).append(name)
    for i, (facility, names) in enumerate(sorted(by_facility.items())):
        lines.append(f"  subgraph cluster_{i} {{")
        lines.append(f"    label={_q(facility)}; style=dashed; color=\"#888888\";")
        for name in sorted(names):
            state = g.states[name]
            top = state.split(".", 1)[0]
            # ``\\n`` is DOT's line break: added after quoting the id.
            label = _q(name.split("/", 1)[1])[:-1] + (f"\\n{top}" if top else "") + '"'
            extra = ", penwidth=3" if name == focus else ""
            lines.append(f"    {_q(name)} [label={label}, "
                         f"fillcolor={_q(COLOURS.get(top, UNKNOWN))}{extra}];")
        lines.append("  }")
    for e in g.edges:
        attrs = [f"label={_q(e.type)}"]
        if _facility(e.source) != _facility(e.target):
            attrs.append("style=dashed")
        if e.status == "waiting":
            attrs.append('color="#cb181d"')
        lines.append(f"  {_q(e.source)} -> {_q(e.target)} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
