"""Simulator scenarios: validated, with errors that name the field (agents_sim.sim)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from agents_sim.sim import FAULT_TYPES, SIMULATED_FAULTS, ScenarioError, load_scenario

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"

GOOD: dict[str, Any] = {
    "name": "t",
    "duration_s": 60,
    "facilities": [{
        "id": "plant",
        "map": "maps/warehouse.yaml",
        "templates": ["pick_and_deliver"],
        "fleet": [{"kind": "robot", "capabilities": ["tote_carrier"]},
                  {"kind": "human", "count": 2, "capabilities": ["picking"]}],
        "arrivals": [{"template": "pick_and_deliver", "every_s": 10}],
    }],
}


def _refused(change: Any) -> str:
    doc = copy.deepcopy(GOOD)
    change(doc)
    with pytest.raises(ScenarioError) as err:
        load_scenario(doc, base_dir=SCENARIOS)
    return str(err.value)


def test_good_scenario_loads_its_map_templates_and_agent_ids() -> None:
    """A valid scenario loads its map and templates and names its agents."""
    s = load_scenario(GOOD, base_dir=SCENARIOS)
    plant = s.facility("plant")
    assert plant.facility_map is not None and "shelf_a3" in plant.facility_map.nodes
    assert "pick_and_deliver" in plant.loaded_templates
    assert plant.agent_ids() == ["robot-1", "human-1", "human-2"]


def test_bad_fleet_speed_names_its_path() -> None:
    """A negative speed is refused naming facilities[0].fleet[1].speed."""
    msg = _refused(lambda d: d["facilities"][0]["fleet"][1].update(speed=-1))
    assert msg.startswith("facilities[0].fleet[1].speed:")


def test_unknown_field_is_refused() -> None:
    """An unknown key (a typo) is refused, named."""
    msg = _refused(lambda d: d["facilities"][0]["arrivals"][0].update(rate_per_hour=3))
    assert msg.startswith("facilities[0].arrivals[0].rate_per_hour:")


def test_arrival_needs_exactly_one_rate() -> None:
    """An arrival giving both every_s and at is refused."""
    msg = _refused(lambda d: d["facilities"][0]["arrivals"][0].update(at=[1, 2]))
    assert msg.startswith("facilities[0].arrivals[0]: give exactly one of")


def test_unknown_template_is_refused() -> None:
    """An arrival of a template the facility did not load is refused."""
    msg = _refused(lambda d: d["facilities"][0]["arrivals"][0].update(template="nope"))
    assert msg.startswith("facilities[0].arrivals[0].template: no template 'nope'")


def test_fleet_without_a_needed_capability_is_refused() -> None:
    """A template step no agent of the fleet can do is refused."""
    msg = _refused(lambda d: d["facilities"][0]["fleet"].pop(0))
    assert "needs a robot with ['tote_carrier']" in msg


def test_step_location_off_the_map_is_refused() -> None:
    """A template whose step location is not a map node is refused."""
    msg = _refused(lambda d: d["facilities"][0].update(
        map={"map_id": "tiny", "nodes": {"dock": {"x": 0, "y": 0}}}))
    assert msg.startswith("facilities[0].arrivals[0].template: step 'pick'")
    assert "not a node of the facility's map" in msg


def test_ai_agent_has_no_speed() -> None:
    """A speed on an AI agent is refused naming the field."""
    msg = _refused(lambda d: d["facilities"][0]["fleet"].append(
        {"kind": "ai", "speed": 2.0}))
    assert msg == "facilities[0].fleet[2].speed: an ai agent has no speed"


def test_fault_on_unknown_agent_is_refused() -> None:
    """A fault whose target is no agent is refused."""
    msg = _refused(lambda d: d.update(faults=[
        {"at_s": 5, "type": "agent_failure", "target": "robot-9"}]))
    assert msg.startswith("faults[0].target: no agent 'robot-9'")


def test_ambiguous_fault_target_is_refused() -> None:
    """A bare agent id that two facilities have must be named facility/agent."""
    def two(d: dict[str, Any]) -> None:
        other = copy.deepcopy(d["facilities"][0])
        other["id"] = "annex"
        d["facilities"].append(other)
        d["faults"] = [{"at_s": 5, "type": "network_drop", "target": "robot-1"}]
    msg = _refused(two)
    assert msg == "faults[0].target: 'robot-1' is in plant, annex; name it as facility/agent"


def test_every_fault_type_is_simulated() -> None:
    """All six fault types a scenario may name are carried out by the runner."""
    assert set(SIMULATED_FAULTS) == set(FAULT_TYPES)


def test_broker_restart_names_a_facility() -> None:
    """A broker restart's target is the facility whose broker restarts."""
    msg = _refused(lambda d: d.update(faults=[
        {"at_s": 5, "type": "broker_restart", "target": "human-1"}]))
    assert msg == "faults[0].target: broker_restart names a facility; no facility 'human-1'"


@pytest.mark.parametrize(("fault", "expected"), [
    ({"target": "robot-1", "node": "shelf_a3"},
     "faults[0].target: 'robot-1' is not a person; a zone intrusion is a person stepping "
     "into a robot's zone"),
    ({"target": "human-1"},
     "faults[0].node: a zone_intrusion needs the node the person steps onto"),
    ({"target": "human-1", "node": "nowhere"},
     "faults[0].node: 'nowhere' is not a node of plant's map"),
    ({"target": "human-1", "node": "shelf_a3"},
     "faults[0].node: 'shelf_a3' lies in no exclusive zone"),
])
def test_bad_zone_intrusion_is_refused(fault: dict[str, Any], expected: str) -> None:
    """A zone intrusion needs a person and a node in an exclusive zone."""
    msg = _refused(lambda d: d.update(faults=[
        {"at_s": 5, "type": "zone_intrusion", **fault}]))
    assert msg == expected


def test_node_on_another_fault_type_is_refused() -> None:
    """Only a zone intrusion takes a node."""
    msg = _refused(lambda d: d.update(faults=[
        {"at_s": 5, "type": "agent_failure", "target": "robot-1", "node": "dock"}]))
    assert msg == "faults[0].node: only a zone_intrusion takes a node"


def test_battery_depletion_of_a_person_is_refused() -> None:
    """Only a robot's battery can be depleted."""
    msg = _refused(lambda d: d.update(faults=[
        {"at_s": 5, "type": "battery_depletion", "target": "human-1"}]))
    assert msg == ("faults[0].target: 'human-1' is not a robot; only robots have a battery "
                   "to deplete")


def test_edge_drop_names_a_facility() -> None:
    """An edge_drop whose target is not a facility is refused."""
    msg = _refused(lambda d: d.update(faults=[
        {"at_s": 5, "type": "edge_drop", "target": "robot-1"}]))
    assert msg == "faults[0].target: edge_drop names a facility; no facility 'robot-1'"


def test_unknown_fault_type_is_refused() -> None:
    """A fault type outside the six is refused naming the field."""
    msg = _refused(lambda d: d.update(faults=[
        {"at_s": 5, "type": "meteor", "target": "robot-1"}]))
    assert msg.startswith("faults[0].type:")


def test_duplicate_facility_is_refused() -> None:
    """Two facilities with one id are refused."""
    msg = _refused(lambda d: d["facilities"].append(copy.deepcopy(d["facilities"][0])))
    assert msg == "facilities[1].id: facility 'plant' is named twice"


def test_bad_yaml_file_is_refused(tmp_path: Path) -> None:
    """A file that is not YAML is refused with its name."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ScenarioError, match=r"bad\.yaml: not valid YAML"):
        load_scenario(bad)


@pytest.mark.parametrize("name", ["smoke.yaml", "warehouse_3f.yaml", "stress_1000.yaml"])
def test_shipped_scenarios_load(name: str) -> None:
    """The scenarios shipped in scenarios/ are valid."""
    s = load_scenario(SCENARIOS / name)
    assert s.name == name.removesuffix(".yaml")
