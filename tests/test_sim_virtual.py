"""The simulator's virtual mode: real edge cores under SimPy time (agents_sim.sim)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agents_sim.sim import SimResult, load_scenario, run_virtual
from cloud_hub import VirtualHub
from edge_runtime.core import Event
from fleetflow.__main__ import main
from topics import pack_edge_events

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
EPOCH = 1_767_225_600.0


def _one_order(faults: list[dict[str, Any]], **fleet: int) -> dict[str, Any]:
    """One pick_and_deliver order at t=1 in a facility with this many robots and people."""
    return {
        "name": "one", "duration_s": 60, "drain_s": 3600, "faults": faults,
        "facilities": [{
            "id": "p", "map": "maps/warehouse.yaml", "templates": ["pick_and_deliver"],
            "fleet": [
                {"kind": "robot", "count": fleet.get("robots", 2),
                 "capabilities": ["tote_carrier"], "node": "charger"},
                {"kind": "human", "count": fleet.get("humans", 2),
                 "capabilities": ["picking"], "node": "dock"}],
            "arrivals": [{"template": "pick_and_deliver", "at": [1]}],
        }],
    }


def _run(doc: dict[str, Any], seed: int | None = None) -> SimResult:
    return run_virtual(load_scenario(doc, base_dir=SCENARIOS), seed)


def _kinds(events: list[Event], *kinds: str) -> list[tuple[float, str, dict[str, Any]]]:
    return [(round((e.hlc >> 16) / 1000 - EPOCH, 2), e.kind, e.data)
            for e in events if e.kind in kinds]


def test_smoke_scenario_ends_every_workflow() -> None:
    """The smoke scenario runs to the end with every workflow completed."""
    result = run_virtual(load_scenario(SCENARIOS / "smoke.yaml"))
    outcome = result.workflows["plant"]
    assert len(outcome) >= 8
    assert result.all_terminal and set(outcome.values()) == {"completed"}
    done = {e.workflow_id for e in result.events["plant"] if e.kind == "workflow_completed"}
    assert done == set(outcome)


def test_same_seed_gives_byte_identical_logs() -> None:
    """Two runs of one scenario and seed give the same encoded events and hash."""
    scenario = load_scenario(SCENARIOS / "smoke.yaml")
    a, b = run_virtual(scenario), run_virtual(scenario)
    assert a.log_hash == b.log_hash
    assert pack_edge_events(a.events["plant"], "plant") == pack_edge_events(
        b.events["plant"], "plant")


def test_same_seed_same_hash_across_processes() -> None:
    """Separate processes with different string-hash seeds print the same log hash."""
    hashes = set()
    for hash_seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-m", "fleetflow", "sim", str(SCENARIOS / "warehouse_3f.yaml"),
             "--json"], capture_output=True, text=True, check=True, timeout=120,
            env={**os.environ, "PYTHONHASHSEED": hash_seed})
        hashes.add(json.loads(out.stdout)["log_hash"])
    assert len(hashes) == 1


def test_other_seed_gives_another_log() -> None:
    """Another seed gives another log hash."""
    scenario = load_scenario(SCENARIOS / "smoke.yaml")
    assert run_virtual(scenario, seed=1).log_hash != run_virtual(scenario, seed=2).log_hash


def test_three_facilities_each_get_their_own_log() -> None:
    """The 3-facility scenario runs a core per facility, each log from seq 1 on (and the
    hub's aggregation: its cross-facility flows need it)."""
    result = run_virtual(load_scenario(SCENARIOS / "warehouse_3f.yaml"), hub=VirtualHub)
    assert list(result.events) == ["north", "east", "west"]
    for events in result.events.values():
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert result.all_terminal


def test_agent_failure_requeues_the_step_to_another_agent() -> None:
    """A picker failing mid-pick is lost (offline) and the pick goes to the other picker."""
    result = _run(_one_order([{"at_s": 5, "type": "agent_failure", "target": "human-1"}]))
    events = result.events["p"]
    picks = [d["agent"] for _, k, d in _kinds(events, "step_assigned") if d["step"] == "pick"]
    assert picks == ["human-1", "human-2"]
    lost = _kinds(events, "agent_lost", "step_requeued")
    assert [(t, k) for t, k, _ in lost] == [(5.0, "agent_lost"), (5.0, "step_requeued")]
    assert lost[0][2] == {"agent": "human-1", "reason": "offline"}
    assert result.workflows["p"] == {"p-0-1": "completed"}


def test_repaired_agent_comes_back() -> None:
    """An agent failure with a duration ends in the agent joining again, repaired."""
    result = _run(_one_order([{"at_s": 5, "type": "agent_failure", "target": "robot-1",
                               "duration_s": 30}]))
    joined = [t for t, _, d in _kinds(result.events["p"], "agent_joined")
              if d["agent"] == "robot-1"]
    assert len(joined) == 2 and joined[1] >= 35.0


def test_network_drop_loses_the_agent_and_reallocates() -> None:
    """A picker whose network drops falls silent, is lost and the pick is reallocated."""
    result = _run(_one_order([{"at_s": 5, "type": "network_drop", "target": "human-1",
                               "duration_s": 300}]))
    events = result.events["p"]
    lost = _kinds(events, "agent_lost")
    assert [d for _, _, d in lost] == [{"agent": "human-1", "reason": "silent"}]
    assert 5.0 < lost[0][0] <= 5.0 + 15 * 1.5 + 5  # within its liveness window (+1 period)
    picks = [d["agent"] for _, k, d in _kinds(events, "step_assigned") if d["step"] == "pick"]
    assert picks == ["human-1", "human-2"]
    assert result.workflows["p"] == {"p-0-1": "completed"}
    assert result.dropped > 0


def test_battery_depletion_keeps_the_robot_out_of_work() -> None:
    """A robot whose battery is depleted gets no robot step while the battery rule is on."""
    doc = _one_order([{"at_s": 0.5, "type": "battery_depletion", "target": "robot-1"}])
    doc["facilities"][0]["core"] = {"battery_per_meter": 0.1, "battery_reserve": 5}
    doc["facilities"][0]["arrivals"][0]["at"] = [1, 2, 3]
    result = _run(doc)
    events = result.events["p"]
    robots = {d["agent"] for _, _, d in _kinds(events, "step_assigned")
              if d["step"] in ("load", "deliver")}
    assert robots == {"robot-2"}
    assert {"agent": "robot-1", "battery": 0.0} in [
        {"agent": d["agent"], "battery": d["battery"]}
        for _, _, d in _kinds(events, "agent_updated")]
    assert result.all_terminal


def test_without_faults_the_first_robot_works() -> None:
    """The same orders without the depletion go to robot-1 (the lowest id at equal cost)."""
    doc = _one_order([])
    doc["facilities"][0]["core"] = {"battery_per_meter": 0.1, "battery_reserve": 5}
    doc["facilities"][0]["arrivals"][0]["at"] = [1, 2, 3]
    events = _run(doc).events["p"]
    assert "robot-1" in {d["agent"] for _, _, d in _kinds(events, "step_assigned")
                         if d["step"] in ("load", "deliver")}


def test_edge_drop_loses_every_agent_and_recovers() -> None:
    """An edge cut off loses all its agents (silent); back online they rejoin and finish."""
    result = _run(_one_order([{"at_s": 5, "type": "edge_drop", "target": "p",
                               "duration_s": 120}]))
    events = result.events["p"]
    lost = _kinds(events, "agent_lost")
    assert sorted(d["agent"] for _, _, d in lost) == ["human-1", "human-2", "robot-1",
                                                      "robot-2"]
    assert {d["reason"] for _, _, d in lost} == {"silent"}
    assert all(5.0 < t < 125.0 for t, _, _ in lost)
    rejoined = {d["agent"] for t, _, d in _kinds(events, "agent_joined") if t >= 125.0}
    assert rejoined == {"human-1", "human-2", "robot-1", "robot-2"}
    assert _kinds(events, "step_requeued")
    assert result.workflows["p"] == {"p-0-1": "completed"}
    assert result.dropped > 0


def test_person_in_a_robot_zone_stops_the_robot_until_they_leave(tmp_path: Path) -> None:
    """A zone intrusion pauses the robot working there; it resumes when the person left."""
    (tmp_path / "bay.yaml").write_text(
        "name: bay\nsteps: [{id: work, kind: robot, location: bay, "
        "estimated_duration_s: 60}]\n")
    doc = {"name": "z", "duration_s": 10, "facilities": [{
        "id": "p", "map": {
            "zones": {"cold": {"mode": "exclusive"}},
            "nodes": {"dock": {"x": 0, "y": 0}, "bay": {"x": 10, "y": 0, "zones": ["cold"]}},
            "edges": [["dock", "bay"]]},
        "templates": [str(tmp_path / "bay.yaml")],
        "fleet": [{"kind": "robot", "node": "bay", "duration_cv": 0},
                  {"kind": "human", "node": "dock"}],
        "arrivals": [{"template": "bay", "at": [1]}]}],
        "faults": [{"at_s": 40, "type": "zone_intrusion", "target": "human-1", "node": "bay",
                    "duration_s": 15}]}
    result = _run(doc)
    events = result.events["p"]
    safety = _kinds(events, "conflict_detected", "agent_stopped", "conflict_resolved")
    assert [(t, k) for t, k, _ in safety] == [
        (40.01, "conflict_detected"), (40.01, "agent_stopped"), (55.01, "conflict_resolved")]
    assert safety[0][2]["rule"] == "person_in_robot_zone"
    started = next(t for t, _, _ in _kinds(events, "step_started"))
    done = next(t for t, _, _ in _kinds(events, "step_done"))
    assert done - started == pytest.approx(60 + 15, abs=0.05)  # its work plus the stop
    assert result.all_terminal


def test_broker_restart_loses_messages_but_no_agent() -> None:
    """A short broker restart loses messages; resends carry the run through, nobody is lost."""
    doc = _one_order([{"at_s": 2, "type": "broker_restart", "target": "p"}])
    result = _run(doc)
    assert result.dropped > 0
    assert _kinds(result.events["p"], "agent_lost") == []
    assert result.workflows["p"] == {"p-0-1": "completed"}


def test_travel_time_follows_the_map_and_speed(tmp_path: Path) -> None:
    """A robot's step lasts its path length over its speed (no work time, no spread)."""
    (tmp_path / "go.yaml").write_text(
        "name: go\nsteps: [{id: go, kind: robot, location: cell_7, "
        "estimated_duration_s: 0}]\n")
    doc = {"name": "go", "duration_s": 10, "facilities": [{
        "id": "p", "map": str(SCENARIOS / "maps/warehouse.yaml"),
        "templates": [str(tmp_path / "go.yaml")],
        "fleet": [{"kind": "robot", "node": "charger", "speed": 2.0, "drain_per_m": 0.1,
                   "duration_cv": 0}],
        "arrivals": [{"template": "go", "at": [1]}]}]}
    result = _run(doc)
    events = result.events["p"]
    started = next(t for t, _, _ in _kinds(events, "step_started"))
    done = next(t for t, _, _ in _kinds(events, "step_done"))
    # charger -> dock 10 m, dock -> a5 50 m, a5 -> cell_7 10 m: 70 m at 2 m/s
    assert done - started == pytest.approx(35.0, abs=0.02)
    battery = [d["battery"] for _, _, d in _kinds(events, "agent_updated")]
    assert battery[-1] == pytest.approx(100 - 70 * 0.1 - 0.5)  # per metre, plus the step's


def test_people_take_up_work_after_their_acceptance_delay() -> None:
    """A person accepts an assignment only after a (seeded, positive) delay."""
    doc = _one_order([], humans=1)
    doc["facilities"][0]["fleet"][1]["accept_delay_s"] = 30
    events = _run(doc).events["p"]
    assigned = next(t for t, _, d in _kinds(events, "step_assigned") if d["step"] == "pick")
    accepted = next(t for t, _, d in _kinds(events, "step_accepted") if d["step"] == "pick")
    assert accepted - assigned > 0.05


def test_cli_prints_the_log_hash_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    """`fleetflow sim --virtual --json` prints the summary with the run's log hash."""
    assert main(["sim", str(SCENARIOS / "smoke.yaml"), "--virtual", "--json",
                 "--seed", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    scenario = load_scenario(SCENARIOS / "smoke.yaml")
    assert out["log_hash"] == run_virtual(scenario, seed=3).log_hash
    assert out["facilities"]["plant"]["workflows"] == out["facilities"]["plant"]["completed"]


def test_cli_prints_a_summary_and_writes_the_report(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --json the CLI prints each facility's outcome and the hash; --report writes."""
    assert main(["sim", str(SCENARIOS / "smoke.yaml"), "--report", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "plant: " in out and "workflows (completed " in out
    assert f"log hash {run_virtual(load_scenario(SCENARIOS / 'smoke.yaml')).log_hash}" in out
    assert (tmp_path / "r" / "kpis.json").is_file()


def test_cli_replay_with_a_scenario_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """--replay STORE takes no scenario: exit status 2 saying so (tests/test_sim_replay.py)."""
    assert main(["sim", str(SCENARIOS / "smoke.yaml"), "--replay", "store"]) == 2
    assert "takes no scenario" in capsys.readouterr().err


def test_cli_refuses_a_bad_scenario_naming_the_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad scenario file is refused with exit 2 and the field's path."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nduration_s: -1\nfacilities: []\n")
    assert main(["sim", str(bad), "--virtual"]) == 2
    assert "duration_s:" in capsys.readouterr().err
