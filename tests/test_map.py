"""The facility map: loading, validation errors that name the field, shortest paths."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_runtime.facility import FacilityMap, MapError, load_map

DEMO = Path(__file__).resolve().parent.parent / "maps" / "demo.yaml"


def _doc(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "nodes": {"a": {"x": 0, "y": 0}, "b": {"x": 3, "y": 4}, "c": {"x": 3, "y": 10}},
        "edges": [["a", "b"], ["b", "c"]],
    }
    doc.update(extra)
    return doc


def test_demo_map_loads() -> None:
    """The shipped demo warehouse has a charger, pick stations and an exclusive zone."""
    m = load_map(DEMO)
    assert 10 <= len(m.nodes) <= 24  # with a node for each location the templates use
    assert m.chargers == ["charger"]
    assert len(m.stations("pick")) >= 3
    assert m.exclusive_zones("cold1") == ["cold_room"]
    assert nx.is_strongly_connected(m.graph)


def test_default_length_is_euclidean() -> None:
    """An edge without a length costs the distance between its nodes."""
    m = FacilityMap.from_dict(_doc())
    assert m.path_cost("a", "b") == pytest.approx(5.0)
    assert m.path_cost("a", "c") == pytest.approx(11.0)
    assert m.path("c", "a") == ["c", "b", "a"]


def test_one_way_edge() -> None:
    """A non-bidirectional edge is only travelled forwards; unreachable costs inf."""
    m = FacilityMap.from_dict(_doc(edges=[{"from": "a", "to": "b", "bidirectional": False}]))
    assert m.path_cost("a", "b") == pytest.approx(5.0)
    assert m.path_cost("b", "a") == math.inf
    assert m.path("b", "a") is None


def test_explicit_length_wins() -> None:
    """A given length replaces the euclidean default, and the cheaper route is taken."""
    m = FacilityMap.from_dict(_doc(edges=[["a", "b"], ["b", "c"],
                                          {"from": "a", "to": "c", "length": 2}]))
    assert m.path("a", "c") == ["a", "c"]
    assert m.path_cost("a", "c") == 2


@pytest.mark.parametrize(("doc", "named"), [
    (_doc(nodes={"a": {"x": "far", "y": 0}}), "nodes.a.x"),
    (_doc(nodes={"a": {"x": float("nan"), "y": 0}}), "nodes.a.x"),
    (_doc(nodes={"a": {"x": 0, "y": 0, "colour": "red"}}), "nodes.a.colour"),
    (_doc(edges=[["a", "zz"]]), "edges[0].to"),
    (_doc(edges=[{"from": "a", "to": "b", "length": -1}]), "edges[0].length"),
    (_doc(nodes={"a": {"x": 0, "y": 0, "zones": ["nowhere"]}}, edges=[]), "nodes.a.zones"),
    (_doc(zones={"z": {"mode": "private"}}), "zones.z.mode"),
    ({"edges": []}, "nodes"),
])
def test_bad_map_names_the_field(doc: dict[str, Any], named: str) -> None:
    """Each kind of bad map document is refused with an error naming the bad field."""
    with pytest.raises(MapError, match="^" + re.escape(named)):
        FacilityMap.from_dict(doc)


def test_unknown_node_query() -> None:
    """Asking for a path to a node the map lacks is a KeyError naming it."""
    m = FacilityMap.from_dict(_doc())
    with pytest.raises(KeyError, match="nowhere"):
        m.path_cost("a", "nowhere")


def test_load_bad_file(tmp_path: Path) -> None:
    """Unreadable YAML and missing files are MapErrors that name the file."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: [unclosed\n")
    with pytest.raises(MapError, match=r"bad\.yaml"):
        load_map(bad)
    with pytest.raises(MapError, match="cannot read"):
        load_map(tmp_path / "missing.yaml")


def test_json_map(tmp_path: Path) -> None:
    """A JSON document loads like the YAML one."""
    path = tmp_path / "m.json"
    path.write_text('{"nodes": {"a": {"x": 0, "y": 0}, "b": {"x": 1, "y": 0}}, '
                    '"edges": [["a", "b"]]}')
    assert load_map(path).path_cost("b", "a") == 1


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7),
                          st.floats(0.5, 100, allow_nan=False)), max_size=25))
def test_path_cost_matches_networkx(edges: list[tuple[int, int, float]]) -> None:
    """Cached costs equal networkx's Dijkstra, and the path's lengths add up to its cost."""
    nodes = {f"n{i}": {"x": i, "y": 0} for i in range(8)}
    doc = {"nodes": nodes, "edges": [{"from": f"n{a}", "to": f"n{b}", "length": w}
                                     for a, b, w in edges if a != b]}
    m = FacilityMap.from_dict(doc)
    for a in nodes:
        for b in nodes:
            cost = m.path_cost(a, b)
            try:
                expected = nx.dijkstra_path_length(m.graph, a, b, weight="length")
            except nx.NetworkXNoPath:
                assert cost == math.inf
                continue
            assert cost == pytest.approx(expected)
            path = m.path(a, b)
            assert path is not None and path[0] == a and path[-1] == b
            walked = sum(m.graph.edges[u, v]["length"] for u, v in itertools.pairwise(path))
            assert walked == pytest.approx(cost)
