"""The hub's aggregation in virtual runs and cross-facility workflows (agents_sim.sim with
cloud_hub.VirtualHub: real edge cores, the hub's real worker and a RocksDB store)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents_sim.sim import (
    ScenarioError,
    SimResult,
    hub_templates,
    load_scenario,
    run_virtual,
)
from cloud_hub import VirtualHub
from edge_runtime.core import Event, Template

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
EPOCH = 1_767_225_600.0
TERMINAL = {"workflow_completed": "completed", "workflow_failed": "failed",
            "workflow_cancelled": "cancelled"}


def _facility(fid: str, templates: list[str], arrivals: list[dict[str, Any]] | None = None,
              ai_fail: float | None = None) -> dict[str, Any]:
    fleet: list[dict[str, Any]] = [
        {"kind": "robot", "id_prefix": f"{fid}-robot", "count": 2, "node": "charger",
         "capabilities": ["tote_carrier", "camera", "pallet_jack"], "speed": 1.5},
        {"kind": "human", "id_prefix": f"{fid}-human", "count": 2, "node": "dock",
         "capabilities": ["picking", "rework"], "accept_delay_s": 2}]
    if ai_fail is not None:
        fleet.append({"kind": "ai", "id_prefix": f"{fid}-ai", "capabilities":
                      ["defect_detection"], "fail_prob": ai_fail})
    return {"id": fid, "map": "maps/warehouse.yaml", "templates": templates,
            "fleet": fleet, "arrivals": arrivals or []}


def _doc(cross: list[dict[str, Any]] | None = None, faults: list[dict[str, Any]] | None = None,
         source_template: str = "pick_and_deliver", ai_fail: float | None = None
         ) -> dict[str, Any]:
    """Two facilities: ``fa`` runs the sources, ``fb`` the targets (and a local order)."""
    return {
        "name": "two", "seed": 5, "duration_s": 600, "drain_s": 3600, "hub": {},
        "facilities": [
            _facility("fa", [source_template], ai_fail=ai_fail),
            _facility("fb", ["pick_and_deliver"],
                      [{"template": "pick_and_deliver", "every_s": 250}])],
        "cross_facility": cross if cross is not None else [
            {"source": {"facility": "fa", "template": source_template},
             "target": {"facility": "fb", "template": "pick_and_deliver"},
             "every_s": 150}],
        "faults": faults or [],
    }


def _run(doc: dict[str, Any], seed: int | None = None,
         hub: Callable[[Mapping[str, Template]], VirtualHub] = VirtualHub) -> SimResult:
    return run_virtual(load_scenario(doc, base_dir=SCENARIOS), seed, hub=hub)


def _t(e: Event) -> float:
    return round((e.hlc >> 16) / 1000 - EPOCH, 3)


def _first(events: list[Event], wid: str, kind: str) -> Event:
    return next(e for e in events if e.workflow_id == wid and e.kind == kind)


def _pairs(result: SimResult) -> list[tuple[str, str]]:
    """(source id, target id) of every cross-facility pair created."""
    return [(d["depends_on"], e.workflow_id or "") for e in result.events["fb"]
            if e.kind == "workflow_created" for d in e.data.get("dependencies", [])]


def test_target_starts_only_after_its_source_completed_released_by_the_hub() -> None:
    """Each target waits pending until its source in the other facility completed, then the
    hub's resolve_dependency (a command_reply in the target's log) releases it."""
    result = _run(_doc())
    pairs = _pairs(result)
    assert len(pairs) == 3 and result.all_terminal
    for source, target in pairs:
        done = _first(result.events["fa"], source, "workflow_completed")
        resolved = _first(result.events["fb"], target, "dependency_resolved")
        started = _first(result.events["fb"], target, "workflow_started")
        ended = _first(result.events["fb"], target, "workflow_completed")
        assert resolved.data["verdict"] == "release" and resolved.data["facility"] == "fa"
        assert _t(done) < _t(resolved) == _t(started) < _t(ended)
        assert _t(resolved) - _t(done) < 1.0  # a round (0.2 s) and two hops (0.05 s)
        reply = _first(result.events["fb"], target, "command_reply")  # its creation …
        replies = [e for e in result.events["fb"] if e.kind == "command_reply"
                   and e.data["action"] == "resolve_dependency"
                   and e.data["result"].get("verdict") == "release"
                   and e.workflow_id == target]
        assert reply.data["action"] == "create_workflow" and len(replies) == 1
        assert replies[0].data["cmd"] == f"dep-{target}-{source}"
    assert result.hub is not None
    assert result.hub["dependencies"] == {"total": 3, "waiting": 0,
                                          "resolved": {"release": 3}}


def test_failed_source_fails_its_target() -> None:
    """A source that fails (its AI inspection always fails) fails the sequential target."""
    result = _run(_doc(source_template="ai_inspection", ai_fail=1.0))
    pairs = _pairs(result)
    assert pairs
    for source, target in pairs:
        failed = _first(result.events["fa"], source, "workflow_failed")
        resolved = _first(result.events["fb"], target, "dependency_resolved")
        assert resolved.data["verdict"] == "fail" and _t(failed) < _t(resolved)
        assert result.workflows["fb"][target] == "failed"
        assert not [e for e in result.events["fb"] if e.workflow_id == target
                    and e.kind == "step_assigned"]
    assert result.hub is not None
    assert result.hub["dependencies"]["resolved"] == {"fail": len(pairs)}


def test_false_condition_skips_the_target() -> None:
    """A conditional dependency whose CEL is false on the source's data cancels the target
    (skipped); a data_flow one hands the source's value over."""
    cross = [{"source": {"facility": "fa", "template": "pick_and_deliver",
                         "data": {"express": False}},
              "target": {"facility": "fb", "template": "pick_and_deliver"},
              "type": "conditional", "conditions": {"when": "data.express"}, "at": [10]},
             {"source": {"facility": "fa", "template": "pick_and_deliver",
                         "data": {"order": "A-7"}},
              "target": {"facility": "fb", "template": "pick_and_deliver"},
              "type": "data_flow", "conditions": {"outputs": {"order": "data.order"}},
              "at": [20]}]
    result = _run(_doc(cross))
    assert result.workflows["fb"]["fb-x0-1"] == "cancelled"
    assert _first(result.events["fb"], "fb-x0-1", "dependency_resolved").data[
        "verdict"] == "skip"
    flow = _first(result.events["fb"], "fb-x1-1", "dependency_resolved")
    assert flow.data["verdict"] == "release" and flow.data["data"] == {"order": "A-7"}
    assert result.workflows["fb"]["fb-x1-1"] == "completed"


def test_same_seed_same_logs_and_hub_state_another_seed_differs() -> None:
    """Two runs with one seed give the same log hash and hub state hash; another seed
    gives others."""
    a, b, c = _run(_doc()), _run(_doc()), _run(_doc(), seed=6)
    assert a.hub is not None and b.hub is not None and c.hub is not None
    assert a.log_hash == b.log_hash and a.hub == b.hub
    assert c.log_hash != a.log_hash and c.hub["state_hash"] != a.hub["state_hash"]


def test_edge_drop_of_the_source_delays_but_does_not_lose_the_release() -> None:
    """The source's facility cut off just after its first source completed (before the
    hub's next round streamed it): the release comes once the edge is back and the hub
    caught up on its log, and every target still ends."""
    plain = _run(_doc())
    done = _t(_first(plain.events["fa"], "fa-x0-1", "workflow_completed"))
    cut, back = done + 0.002, done + 60
    dropped = _run(_doc(faults=[{"at_s": cut, "type": "edge_drop", "target": "fa",
                                 "duration_s": back - cut}]))
    assert _t(_first(dropped.events["fa"], "fa-x0-1", "workflow_completed")) == done
    released = _first(dropped.events["fb"], "fb-x0-1", "dependency_resolved")
    plain_release = _first(plain.events["fb"], "fb-x0-1", "dependency_resolved")
    assert _t(plain_release) < back <= _t(released) < back + 1.0
    assert released.data["verdict"] == "release"
    assert dropped.all_terminal and dropped.hub is not None
    assert dropped.hub["dependencies"] == {"total": 3, "waiting": 0,
                                           "resolved": {"release": 3}}


def test_command_lost_on_a_cut_target_edge_is_resent_when_it_is_back() -> None:
    """The target's edge cut off while the hub's resolve_dependency is on its way: the
    command is lost, the hub's outbox resends it when the edge's status is online again,
    and the target is released then."""
    plain = _run(_doc())
    release = _t(_first(plain.events["fb"], "fb-x0-1", "dependency_resolved"))
    cut, back = release - 0.01, release + 20
    result = _run(_doc(faults=[{"at_s": cut, "type": "edge_drop", "target": "fb",
                                "duration_s": back - cut}]))
    released = _first(result.events["fb"], "fb-x0-1", "dependency_resolved")
    assert back <= _t(released) < back + 1.0 and released.data["verdict"] == "release"
    assert result.hub is not None and result.all_terminal
    assert result.hub["commands_dropped"] >= 1 and result.hub["commands"]["resent"] >= 1
    assert result.hub["commands"]["pending"] == 0


def test_hub_summary_counts_match_the_edges_logs() -> None:
    """The hub's workflows per facility and state, and its resolved dependencies, are what
    the edges' own logs say."""
    result = _run(_doc(faults=[{"at_s": 200, "type": "edge_drop", "target": "fb",
                                "duration_s": 60}]))
    expected: dict[str, dict[str, int]] = {}
    for fid, events in result.events.items():
        last: dict[str, str] = {}
        for e in events:
            if e.workflow_id is None:
                continue
            if e.kind in ("workflow_created", "workflow_recovered"):
                last[e.workflow_id] = "pending" if e.kind == "workflow_created" else "active"
            elif e.kind == "workflow_started":
                last[e.workflow_id] = "active"
            elif e.kind in TERMINAL:
                last[e.workflow_id] = TERMINAL[e.kind]
        counts = expected.setdefault(fid, {})
        for state in last.values():
            counts[state] = counts.get(state, 0) + 1
    verdicts: dict[str, int] = {}
    for e in result.events["fb"]:
        if e.kind == "dependency_resolved" and e.data.get("facility") == "fa":
            verdicts[e.data["verdict"]] = verdicts.get(e.data["verdict"], 0) + 1
    assert result.hub is not None
    assert result.hub["workflows"] == {f: dict(sorted(c.items()))
                                       for f, c in sorted(expected.items())}
    assert result.hub["dependencies"]["resolved"] == verdicts
    assert result.hub["events_applied"] == sum(len(e) for e in result.events.values())
    assert result.hub["replica_errors"] == {} and result.hub["conflicts"] == {}


def test_virtual_hub_keeps_its_store_where_told(tmp_path: Path) -> None:
    """A VirtualHub given a directory keeps a real RocksDB store there; one without makes
    a temporary one that closing removes."""
    made: list[VirtualHub] = []

    def in_tmp(templates: Mapping[str, Template]) -> VirtualHub:
        made.append(VirtualHub(templates, tmp_path / "hub"))
        return made[0]

    result = _run(_doc(), hub=in_tmp)
    assert (tmp_path / "hub" / "hub.rocksdb" / "CURRENT").is_file()
    assert made[0].store.closed and result.hub is not None
    scenario = load_scenario(_doc(), base_dir=SCENARIOS)
    own = VirtualHub(hub_templates(scenario))
    where = own.store.path
    assert where.is_dir()
    own.close()
    assert not where.parent.exists()


def test_scenario_with_a_hub_needs_one_to_run() -> None:
    """run_virtual without a hub refuses a scenario with hub: or cross_facility."""
    with pytest.raises(ValueError, match=r"^hub: scenario two runs the hub"):
        run_virtual(load_scenario(_doc(), base_dir=SCENARIOS))


def _refused(change: Callable[[dict[str, Any]], None]) -> str:
    doc = _doc()
    change(doc)
    with pytest.raises(ScenarioError) as err:
        load_scenario(copy.deepcopy(doc), base_dir=SCENARIOS)
    return str(err.value)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.pop("hub"), "cross_facility: cross-facility workflows need the hub"),
    (lambda d: d["cross_facility"][0]["source"].update(facility="nowhere"),
     "cross_facility[0].source.facility: no facility 'nowhere'"),
    (lambda d: d["cross_facility"][0]["target"].update(template="ai_inspection"),
     "cross_facility[0].target.template: no template 'ai_inspection'"),
    (lambda d: d["cross_facility"][0]["target"].update(facility="fa"),
     "cross_facility[0].target.facility: 'fa' is the source's facility too"),
    (lambda d: d["cross_facility"][0].update(type="conditional"),
     "cross_facility[0].conditions: conditional dependency needs conditions.when"),
    (lambda d: d["cross_facility"][0].update(at=[5]),
     "cross_facility[0]: give exactly one of rate_per_h, every_s, at (given: every_s, at)"),
    (lambda d: d["cross_facility"][0].update(type="eventually"),
     "cross_facility[0].type: Input should be 'sequential'"),
    (lambda d: d["hub"].update(round_s=0), "hub.round_s: Input should be greater than 0"),
    (lambda d: d["facilities"][1]["fleet"][0].update(id_prefix="fa-robot"),
     "facilities[1].fleet[0].id_prefix: agent 'fa-robot-1' is in 'fa' too"),
])
def test_bad_cross_facility_fields_are_refused_by_name(
        change: Callable[[dict[str, Any]], None], message: str) -> None:
    """Each bad hub or cross-facility field is refused with its path."""
    assert _refused(change).startswith(message)


def test_cli_runs_the_hub_and_prints_its_state_hash(tmp_path: Path) -> None:
    """fleetflow sim --json on a scenario with a hub prints the hub's summary with its
    state hash; the same run in a process with other string hashes prints the same."""
    path = tmp_path / "two.yaml"
    doc = _doc()
    for f in doc["facilities"]:
        f["map"] = str(SCENARIOS / "maps" / "warehouse.yaml")
    path.write_text(yaml.safe_dump(doc))
    outs = [json.loads(subprocess.run(
        [sys.executable, "-m", "fleetflow", "sim", str(path), "--json"], capture_output=True,
        text=True, check=True, timeout=120, env={**os.environ, "PYTHONHASHSEED": seed}
    ).stdout) for seed in ("1", "2")]
    assert outs[0]["hub"]["state_hash"] == outs[1]["hub"]["state_hash"]
    assert outs[0]["hub"]["dependencies"]["resolved"] == {"release": 3}
    assert outs[0]["log_hash"] == outs[1]["log_hash"]
