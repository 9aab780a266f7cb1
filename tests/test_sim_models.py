"""The simulator's richer agent models: charging, breakdowns, shifts, refusals, AI failures.

Each runs a tiny scenario in virtual mode against a real edge core and reads what the edge
recorded: the models show only through the protocol (states, wills, step events).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from agents_sim.sim import ScenarioError, SimResult, load_scenario, run_virtual
from edge_runtime.core import Event

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
EPOCH = 1_767_225_600.0


def _doc(fleet: list[dict[str, Any]], arrivals: list[dict[str, Any]], *,
         templates: list[str] | None = None, duration_s: float = 60) -> dict[str, Any]:
    return {"name": "models", "duration_s": duration_s, "drain_s": 3600, "facilities": [{
        "id": "p", "map": "maps/warehouse.yaml",
        "templates": templates or ["pick_and_deliver"], "fleet": fleet, "arrivals": arrivals}]}


def _run(doc: dict[str, Any], seed: int | None = None) -> SimResult:
    return run_virtual(load_scenario(doc, base_dir=SCENARIOS), seed)


def _t(e: Event) -> float:
    return round((e.hlc >> 16) / 1000 - EPOCH, 2)


def _of(result: SimResult, kind: str, **match: Any) -> list[tuple[float, dict[str, Any]]]:
    return [(_t(e), e.data) for e in result.events["p"] if e.kind == kind
            and all(e.data.get(k) == v for k, v in match.items())]


ROBOT: dict[str, Any] = {"kind": "robot", "capabilities": ["tote_carrier"], "node": "charger"}
PICKER: dict[str, Any] = {"kind": "human", "capabilities": ["picking"], "node": "dock",
                          "accept_delay_s": 1}
ORDER: dict[str, Any] = {"template": "pick_and_deliver", "at": [1]}


def test_a_low_robot_charges_unavailable_then_takes_work() -> None:
    """A robot under charge_below says `charging` (gets no step) and works once charged."""
    robot = {**ROBOT, "battery": 10, "charge_below": 20, "charge_per_s": 1}
    result = _run(_doc([robot, PICKER], [ORDER]))
    charging = _of(result, "agent_updated", agent="robot-1", status="charging")
    back = [(t, d) for t, d in _of(result, "agent_updated", agent="robot-1", status="idle")
            if d["battery"] == 100]
    assert charging and back and charging[0][0] < back[0][0]
    assert back[0][0] >= 90 - 1  # 90 % at 1 %/s
    assigned = _of(result, "step_assigned", agent="robot-1")
    assert assigned and all(t >= back[0][0] for t, _ in assigned)
    assert result.workflows["p"] == {"p-0-1": "completed"}


def test_a_robot_that_drains_goes_to_charge_after_its_step() -> None:
    """A robot left idle below its threshold drives to the charger at once, then works."""
    robot = {**ROBOT, "node": "dock", "battery": 21, "drain_per_m": 0.05, "charge_below": 20,
             "charge_per_s": 2}
    result = _run(_doc([robot, PICKER], [{"template": "pick_and_deliver", "at": [1, 400]}],
                       duration_s=600))
    charging = _of(result, "agent_updated", agent="robot-1", status="charging")
    first_done = _of(result, "step_done", agent="robot-1")[0][0]
    assert charging and charging[0][0] >= first_done - 0.1
    assert charging[0][1]["node"] != "charger"  # it says so before driving there
    assert set(result.workflows["p"].values()) == {"completed"}


def test_breakdowns_lose_the_robot_and_repair_brings_it_back() -> None:
    """With an MTBF the robot breaks down (its will: agent_lost) and rejoins after repair."""
    robot = {**ROBOT, "count": 2, "mtbf_h": 0.05, "repair_s": 60}
    result = _run(_doc([robot, PICKER], [{"template": "pick_and_deliver", "every_s": 120}],
                       duration_s=1800))
    lost = _of(result, "agent_lost", reason="offline")
    assert lost, "no breakdown in half an hour at a 3-minute MTBF"
    t, data = lost[0]
    rejoined = [u for u, d in _of(result, "agent_joined", agent=data["agent"]) if u > t]
    assert rejoined
    assert result.all_terminal


def test_a_shift_end_takes_the_person_offline_until_the_next() -> None:
    """Off shift a person says paused, signs off (agent_lost offline), and returns on shift."""
    person = {**PICKER, "shifts": [[0, 300], [600, 3000]]}
    result = _run(_doc([ROBOT, person], [{"template": "pick_and_deliver", "at": [1, 350]}],
                       duration_s=400))
    paused = _of(result, "agent_updated", agent="human-1", status="paused")
    lost = _of(result, "agent_lost", agent="human-1", reason="offline")
    joined = [t for t, _ in _of(result, "agent_joined", agent="human-1")]
    assert paused and paused[0][0] >= 300 and lost and lost[0][0] >= paused[0][0]
    assert any(t >= 600 for t in joined)
    picks = [t for t, _ in _of(result, "step_assigned", step="pick")]
    assert len(picks) == 2 and picks[1] >= 600  # the 350 s order waited for the shift
    assert set(result.workflows["p"].values()) == {"completed"}


def test_a_no_show_misses_the_shift() -> None:
    """With no_show_prob 1 the person never comes: the order waits, nobody joins."""
    person = {**PICKER, "shifts": [[0, 3000]], "no_show_prob": 1}
    result = _run(_doc([ROBOT, person], [ORDER]))
    assert not _of(result, "agent_joined", agent="human-1")
    assert result.workflows["p"] == {"p-0-1": "active"}


def test_a_refusal_makes_the_edge_reallocate() -> None:
    """A person who declines an auctioned step: award_declined, the next bidder does it."""
    fleet = [ROBOT, {**PICKER, "id_prefix": "refuser", "node": "shelf_a3", "refuse_prob": 1},
             {**PICKER, "id_prefix": "picker"}]
    result = _run(_doc(fleet, [{**ORDER, "coordination": "auction_based"}]))
    declined = _of(result, "award_declined", agent="refuser-1")
    assert declined and "declined" in declined[0][1]["reason"]
    done = _of(result, "step_done", step="pick")
    assert [d["agent"] for _, d in done] == ["picker-1"]
    assert not _of(result, "step_failed")  # a decline is no failed attempt
    assert result.workflows["p"] == {"p-0-1": "completed"}


def test_a_refusal_of_a_direct_step_fails_the_attempt_and_retries() -> None:
    """In a direct workflow a decline is a failed attempt the edge allocates again."""
    fleet = [ROBOT, {**PICKER, "refuse_prob": 1}]
    result = _run(_doc(fleet, [ORDER]))
    failed = _of(result, "step_failed", step="pick")
    assert failed and failed[0][1]["error"] == "declined"
    assert _of(result, "step_retry", step="pick")
    assert len(_of(result, "step_assigned", step="pick")) == 2  # max_attempts: 2


def test_ai_failures_show_as_step_failed_and_retries() -> None:
    """An AI agent with fail_prob 1 fails every attempt (model_error); the edge retries."""
    fleet: list[dict[str, Any]] = [
        {"kind": "robot", "capabilities": ["camera", "pallet_jack"], "node": "charger"},
        {"kind": "human", "capabilities": ["rework"], "node": "dock"},
        {"kind": "ai", "capabilities": ["defect_detection"], "fail_prob": 1}]
    result = _run(_doc(fleet, [{"template": "ai_inspection", "at": [1]}],
                       templates=["ai_inspection"]))
    failed = _of(result, "step_failed", step="inspect")
    assert len(failed) == 4 and {d["error"] for _, d in failed} == {"model_error"}
    assert len(_of(result, "step_retry", step="inspect")) == 3
    assert result.workflows["p"] == {"p-0-1": "failed"}


def test_every_model_on_is_still_deterministic() -> None:
    """With all models on, the same seed gives the same log hash and another seed differs."""
    fleet = [{**ROBOT, "count": 3, "battery": 40, "drain_per_m": 0.2, "charge_below": 30,
              "mtbf_h": 0.2, "repair_s": 120, "capabilities": ["tote_carrier", "camera",
                                                                "pallet_jack"]},
             {**PICKER, "count": 3, "capabilities": ["picking", "rework"],
              "shifts": [[0, 900], [1200, 4000]], "break_every_s": 400, "break_s": 60,
              "no_show_prob": 0.2, "refuse_prob": 0.2},
             {"kind": "ai", "count": 2, "capabilities": ["defect_detection"], "fail_prob": 0.3}]
    doc = _doc(fleet, [{"template": "pick_and_deliver", "every_s": 90},
                       {"template": "ai_inspection", "rate_per_h": 30}],
               templates=["pick_and_deliver", "ai_inspection"], duration_s=1800)
    a, b, c = _run(doc), _run(doc), _run(doc, seed=5)
    assert a.log_hash == b.log_hash != c.log_hash
    kinds = {e.kind for e in a.events["p"]}
    assert {"agent_lost", "step_failed", "step_retry"} <= kinds


@pytest.mark.parametrize(("entry", "field"), [
    ({"kind": "human", "capabilities": ["picking"], "charge_below": 20}, "charge_below"),
    ({"kind": "robot", "capabilities": ["tote_carrier"], "refuse_prob": 0.1}, "refuse_prob"),
    ({"kind": "robot", "capabilities": ["tote_carrier"], "charge_to": 90}, "charge_to"),
    ({"kind": "human", "capabilities": ["picking"], "shifts": [[10, 5]]}, "shifts[0]"),
    ({"kind": "human", "capabilities": ["picking"], "no_show_prob": 0.5}, "no_show_prob"),
    ({"kind": "ai", "capabilities": ["x"], "fail_prob": 2}, "fail_prob"),
])
def test_bad_model_fields_are_refused_naming_the_field(entry: dict[str, Any],
                                                       field: str) -> None:
    """A model field on the wrong kind, or out of range, is refused with its path."""
    fleet = [ROBOT, PICKER, {**entry, "id_prefix": "extra"}]
    where = rf"facilities\[0\]\.fleet\[2\]\.{re.escape(field)}:"
    with pytest.raises(ScenarioError, match=where):
        load_scenario(_doc(fleet, []), base_dir=SCENARIOS)


def test_a_depleted_robot_with_charge_below_goes_charging() -> None:
    """A battery_depletion fault on an idle robot that charges sends it to the charger."""
    robot = {**ROBOT, "node": "dock", "charge_below": 20, "charge_per_s": 5}
    doc = {**_doc([robot, PICKER], []),
           "faults": [{"at_s": 5, "type": "battery_depletion", "target": "robot-1"}]}
    result = _run(doc)
    charging = _of(result, "agent_updated", agent="robot-1", status="charging")
    assert charging and charging[0][0] >= 5 and charging[0][1]["battery"] == 0
    back = _of(result, "agent_updated", agent="robot-1", status="idle", node="charger")
    assert back and back[-1][1]["battery"] == 100
