"""VDA 5050 robots and e-stops in the simulator (virtual mode, real edge cores).

The VDA robots are the test AGV model (the one the VDA 5050 tests run over MQTT) as SimPy
processes; the virtual edge runs the edge's own VDA master and bridge for them. Each test
reads what the edge core recorded.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents_sim.mqtt_hub import wait_edge_online
from agents_sim.report import kpis
from agents_sim.sim import (
    ScenarioError,
    SimResult,
    load_scenario,
    run_live,
    run_virtual,
)
from broker import BrokerProcess, free_port
from edge_runtime.core import Event
from fleetflow.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
SCENARIOS = ROOT / "scenarios"
MIXED = SCENARIOS / "mixed_vda.yaml"
EPOCH = 1_767_225_600.0


def _doc(fleet: list[dict[str, Any]], arrivals: list[dict[str, Any]], *,
         faults: list[dict[str, Any]] | None = None, templates: list[str] | None = None,
         duration_s: float = 60) -> dict[str, Any]:
    return {"name": "vda", "duration_s": duration_s, "drain_s": 3600,
            "faults": faults or [], "facilities": [{
                "id": "p", "map": "maps/warehouse.yaml",
                "templates": templates or ["pick_and_deliver"], "fleet": fleet,
                "arrivals": arrivals}]}


def _run(doc: dict[str, Any], seed: int | None = None) -> SimResult:
    return run_virtual(load_scenario(doc, base_dir=SCENARIOS), seed)


def _t(e: Event) -> float:
    return round((e.hlc >> 16) / 1000 - EPOCH, 2)


def _events(result: SimResult, kind: str, **match: Any) -> list[Event]:
    return [e for log in result.events.values() for e in log if e.kind == kind
            and all(e.data.get(k) == v for k, v in match.items())]


AGV: dict[str, Any] = {"kind": "robot", "id_prefix": "agv", "protocol": "vda5050",
                       "capabilities": ["tote_carrier"], "node": "charger"}
PICKER: dict[str, Any] = {"kind": "human", "capabilities": ["picking"], "node": "dock",
                          "accept_delay_s": 1}


@pytest.fixture(scope="module")
def mixed() -> SimResult:
    """The shipped mixed scenario, run once for the tests that only read it."""
    return run_virtual(load_scenario(MIXED))


def test_vda_robots_of_both_versions_finish_steps_and_every_workflow_completes(
        mixed: SimResult) -> None:
    """In the mixed hall every workflow completes, and 2.0 AGVs (both instant-action keys)
    and 2.1 AGVs each finished steps the edge recorded under their ids."""
    assert mixed.all_terminal and set(mixed.workflows["hall"].values()) == {"completed"}
    done = {e.data.get("agent") or "" for e in _events(mixed, "step_done")}
    for prefix in ("agv20-", "agv20k-", "agv21-", "robot-"):
        assert any(agent.startswith(prefix) for agent in done), prefix
    assert mixed.rejected == {"hall": 0}


def test_vda_robots_join_as_robots_with_their_entries_capabilities(mixed: SimResult) -> None:
    """Each AGV joins the edge as a robot with its own fleet entry's capabilities."""
    joined = {e.data["agent"]: e.data for e in _events(mixed, "agent_joined")}
    assert joined["agv21-1"]["kind"] == "robot"
    assert joined["agv21-1"]["caps"] == ["tote_carrier", "pallet_jack", "shelf_lift"]
    assert joined["agv20k-1"]["caps"] == ["tote_carrier"]


def test_mixed_runs_are_deterministic_per_seed(mixed: SimResult) -> None:
    """VDA and native robots together: the same seed gives the same log hash, another
    seed another (VDA timestamps and header ids come from simulated time)."""
    scenario = load_scenario(MIXED)
    assert run_virtual(scenario).log_hash == mixed.log_hash
    assert run_virtual(scenario, seed=6).log_hash != mixed.log_hash


def test_a_vda_robot_drains_its_battery_by_the_metres_it_drives() -> None:
    """An AGV's states report a battery lowered by drain_per_m for the route it drove."""
    result = _run(_doc([{**AGV, "drain_per_m": 0.5}, PICKER],
                       [{"template": "pick_and_deliver", "at": [1]}]))
    levels = [e.data["battery"] for e in _events(result, "agent_updated", agent="agv-1")
              if e.data.get("battery") is not None]
    assert levels and min(levels) < 100
    assert result.workflows["p"] == {"p-0-1": "completed"}


def test_a_vda_robot_breakdown_makes_the_edge_requeue_its_step() -> None:
    """A VDA robot failing mid-step (its will: CONNECTIONBROKEN) is lost by the edge,
    which requeues its step to the other AGV; repaired, it joins again."""
    spare = {**AGV, "id_prefix": "spare", "node": "a5"}
    result = _run(_doc([AGV, spare, PICKER], [{"template": "pick_and_deliver", "at": [1]}],
                       faults=[{"at_s": 185, "type": "agent_failure", "target": "agv-1",
                                "duration_s": 30}]))
    first = _events(result, "step_assigned", step="load")
    assert first[0].data["agent"] == "agv-1"
    assert _events(result, "agent_lost", agent="agv-1")
    assert _events(result, "step_requeued", step="load")
    done = _events(result, "step_done", step="load")
    assert [e.data["agent"] for e in done] == ["spare-1"]
    assert len(_events(result, "agent_joined", agent="agv-1")) == 2
    assert result.workflows["p"] == {"p-0-1": "completed"}


CELL_MAP: dict[str, Any] = {
    "map_id": "cellmap", "zones": {"cell": {"mode": "exclusive"}},
    "nodes": {"dock": {"x": 0, "y": 0}, "z1": {"x": 10, "y": 0, "zones": ["cell"]},
              "pick_station_1": {"x": 20, "y": 0}, "packing_2": {"x": 30, "y": 0},
              "shelf_a3": {"x": 10, "y": 10}},
    "edges": [["dock", "z1"], ["z1", "pick_station_1"], ["pick_station_1", "packing_2"],
              ["dock", "shelf_a3"]]}


@pytest.mark.parametrize(("version", "key"), [("2.0.0", "actions"),
                                              ("2.0.0", "instantActions"),
                                              ("2.1.0", "actions")])
def test_a_person_in_an_agvs_zone_pauses_it_by_instant_action_whatever_its_key(
        version: str, key: str) -> None:
    """The edge's pause of an AGV in a person's exclusive zone reaches it as startPause
    under the key its version reads (2.0: both), and stopPause frees it again."""
    agv = {**AGV, "node": "z1", "vda_version": version, "instant_key": key}
    doc = _doc([agv, PICKER], [], faults=[{"at_s": 20, "type": "zone_intrusion",
                                           "target": "human-1", "node": "z1",
                                           "duration_s": 30}])
    doc["facilities"][0]["map"] = CELL_MAP
    result = _run(doc)
    assert _events(result, "agent_stopped", agent="agv-1")
    states = [(_t(e), e.data["status"]) for e in _events(result, "agent_updated", agent="agv-1")]
    paused = [t for t, status in states if status == "paused"]
    assert paused and 20 < paused[0] < 21
    assert any(t > 50 and status == "idle" for t, status in states)


@pytest.mark.parametrize(("entry", "field", "says"), [
    ({**PICKER, "protocol": "vda5050"}, "facilities[0].fleet[1].protocol",
     "only robots speak VDA 5050"),
    ({**AGV, "vda_version": "2.2.0"}, "facilities[0].fleet[1].vda_version",
     "Input should be '2.0.0' or '2.1.0'"),
    ({**AGV, "instant_key": "instantActions"}, "facilities[0].fleet[1].instant_key",
     "only a 2.0 AGV reads instantActions"),
    ({**AGV, "protocol": "native", "manufacturer": "acme"},
     "facilities[0].fleet[1].manufacturer", "only a VDA 5050 robot has a manufacturer"),
    ({**AGV, "charge_below": 20}, "facilities[0].fleet[1].charge_below",
     "VDA 5050 robots do not charge"),
    ({**AGV, "capabilities": ["camera", "pallet_jack"]}, "facilities[0].fleet[1].capabilities",
     "'capture_images', which the VDA 5050 test AGV cannot run"),
    ({**AGV, "estop_s": 10}, "facilities[0].fleet[1].estop_s", "needs estop_mtbf_h"),
    ({**PICKER, "estop_mtbf_h": 1}, "facilities[0].fleet[1].estop_mtbf_h",
     "only robots have"),
])
def test_bad_vda_and_e_stop_fields_are_refused_naming_the_field(
        entry: dict[str, Any], field: str, says: str) -> None:
    """A VDA or e-stop field that does not fit its entry is refused, naming its path."""
    robots = {"kind": "robot", "capabilities": ["tote_carrier", "camera", "pallet_jack"]}
    people = {**PICKER, "id_prefix": "staff", "capabilities": ["picking", "rework"]}
    doc = _doc([robots, entry, people], [{"template": "ai_inspection", "at": [1]}],
               templates=["ai_inspection"])
    with pytest.raises(ScenarioError) as caught:
        load_scenario(doc, base_dir=SCENARIOS)
    assert str(caught.value).startswith(f"{field}: ") and says in str(caught.value)


@pytest.fixture
def vda_stack(tmp_path: Path) -> Iterator[int]:
    """An embedded broker and a `fleetflow edge --vda` on the warehouse map (AGVs announced
    with tote_carrier); yields the broker's port."""
    port = free_port()
    broker = BrokerProcess("127.0.0.1", port, tmp_path / "passwd", allow_anonymous_dev=True)
    broker.start()
    templates = tmp_path / "templates"
    templates.mkdir()
    shutil.copy(ROOT / "templates" / "pick_and_deliver.yaml", templates)
    log = tmp_path / "edge.log"
    with log.open("ab") as out:
        edge = subprocess.Popen(
            [PYTHON, "-m", "fleetflow", "edge", "--facility", "p", "--broker",
             f"mqtt://127.0.0.1:{port}", "--data", str(tmp_path / "data"), "--templates",
             str(templates), "--map", str(SCENARIOS / "maps" / "warehouse.yaml"),
             "--metrics-port", "0", "--vda", "--vda-capabilities", "tote_carrier"],
            cwd=ROOT, stdout=out, stderr=out)
    try:
        assert wait_edge_online("127.0.0.1", port, "p", username=None, timeout=30), \
            log.read_text(errors="replace")[-3000:]
        yield port
    finally:
        edge.terminate()
        try:
            edge.wait(10)
        except subprocess.TimeoutExpired:
            edge.kill()
            edge.wait()
        broker.stop()


@pytest.mark.slow
def test_live_vda_robot_carries_out_its_steps_through_a_real_edge(vda_stack: int) -> None:
    """Live mode: an AGV on its own MQTT connection (uagv/v2/…) gets the robot steps as
    orders from a real `fleetflow edge --vda`, and the workflow completes; after a network
    drop it reconnects and the next one completes too."""
    doc = _doc([AGV, PICKER], [{"template": "pick_and_deliver", "at": [1, 400]}],
               faults=[{"at_s": 300, "type": "network_drop", "target": "agv-1",
                        "duration_s": 20}], duration_s=420)
    result = run_live(load_scenario(doc, base_dir=SCENARIOS), "127.0.0.1", vda_stack,
                      speed=40)
    assert result.all_terminal and set(result.workflows["p"].values()) == {"completed"}
    done = [e for e in result.events["p"] if e.kind == "step_done"
            and e.data.get("agent") == "agv-1"]
    assert {e.data["step"] for e in done} == {"load", "deliver"} and len(done) == 4
    assert any(e.kind == "agent_lost" and e.data["agent"] == "agv-1"
               for e in result.events["p"])


def test_cli_live_with_a_vda_fleet_says_when_no_broker_answers(
        capsys: pytest.CaptureFixture[str]) -> None:
    """`fleetflow sim mixed_vda.yaml --live` against no broker exits 2 in one line."""
    port = free_port()
    assert main(["sim", str(MIXED), "--live", "--broker", f"mqtt://127.0.0.1:{port}",
                 "--connect-timeout", "0.5"]) == 2
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and err.count("\n") == 1


E_STOPS: dict[str, Any] = {"estop_mtbf_h": 0.05, "estop_s": 15}


def _e_stop_run(seed: int | None = None) -> SimResult:
    native = {"kind": "robot", "capabilities": ["tote_carrier"], "node": "charger", **E_STOPS}
    return _run(_doc([native, {**AGV, "node": "a5", **E_STOPS}, PICKER],
                     [{"template": "pick_and_deliver", "every_s": 120}], duration_s=1200),
                seed)


def test_e_stops_open_and_resolve_conflicts_and_workflows_still_end() -> None:
    """Native and VDA robots' e-stops raise e_stop conflicts that resolve on release;
    every workflow still reaches a terminal state."""
    result = _e_stop_run()
    opened = _events(result, "conflict_detected", rule="e_stop")
    stopped = {agent for e in opened for agent in e.data["participants"]}
    assert {"robot-1", "agv-1"} <= stopped
    resolved = {e.data["id"] for e in _events(result, "conflict_resolved")}
    still_open = [e for e in opened if e.data["id"] not in resolved]
    assert len(still_open) <= 1  # a stop that outlasted the last workflow (the run ends)
    assert len(resolved & {e.data["id"] for e in opened}) >= 2
    assert result.all_terminal


def test_an_e_stopped_robot_reports_it_and_is_given_no_work_meanwhile() -> None:
    """While a robot's e-stop conflict is open its states say e_stop and the edge assigns
    it no step."""
    result = _e_stop_run()
    for agent in ("robot-1", "agv-1"):
        windows = []
        for e in _events(result, "conflict_detected", rule="e_stop"):
            if e.data["participants"] == [agent]:
                ends = [_t(r) for r in _events(result, "conflict_resolved", id=e.data["id"])]
                windows.append((_t(e), ends[0] if ends else result.sim_s))
        assert windows, agent
        flagged = _events(result, "agent_updated", agent=agent, e_stop=True)
        assert flagged
        for e in _events(result, "step_assigned", agent=agent):
            assert not any(start < _t(e) < end for start, end in windows)


def test_the_report_counts_e_stops_under_conflicts_by_type_and_rule() -> None:
    """The KPI report counts every e_stop conflict (rule e_stop, type safety)."""
    result = _e_stop_run()
    k = kpis(result.events, duration_s=result.sim_s)
    opened = len(_events(result, "conflict_detected", rule="e_stop"))
    assert opened > 0 and k.conflicts_by_rule["e_stop"] == opened
    assert k.conflicts_by_type["safety"] >= opened


def test_e_stops_are_deterministic_per_seed() -> None:
    """With e-stops on, the same seed gives the same log hash and another another."""
    assert _e_stop_run().log_hash == _e_stop_run().log_hash
    assert _e_stop_run(seed=1).log_hash != _e_stop_run().log_hash
