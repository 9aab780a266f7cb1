"""Determinism: replay equals the live projection, restore(snapshot) too, and the same
inputs give byte-identical event logs; the shipped templates complete."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_runtime.core import (
    Append,
    Core,
    CoreConfig,
    CoreError,
    Event,
    Input,
    TimerFired,
    encode_event,
)
from edge_runtime.templates import load_templates
from edge_runtime.testing import ScriptedFleet
from topics import (
    AgentConn,
    AgentState,
    CommandAck,
    HubCommand,
    StepAccepted,
    StepDone,
    StepFailed,
    StepStarted,
    SyncArrival,
)

TEMPLATES = load_templates(Path(__file__).resolve().parent.parent / "templates")
AGENTS = [("r1", "robot"), ("r2", "robot"), ("h1", "human"), ("h2", "human"), ("a1", "ai")]
CAPS = ["picking", "fitter", "rework", "tote_carrier", "shelf_lift", "camera", "pallet_jack",
        "defect_detection"]
OUTPUTS: dict[str, dict[str, Any]] = {"pick": {"tote_id": "T1"}, "capture": {"image_set": "I1"},
           "inspect": {"defect": False, "score": 0.9}, "fit_part": {"serial": "S1"}}


# Two nodes of one exclusive zone: people and robots meeting there raise safety conflicts.
CONFIG = CoreConfig(exclusive_zones={"z1": ("cold",), "z2": ("cold",)}, stall_factor=1.0)
NODES = ["dock", "z1", "z2"]


def _outputs(a: Any) -> dict[str, Any]:
    return dict(OUTPUTS.get(a.step_id, {}))


def test_shipped_templates_complete_with_scripted_agents() -> None:
    """Every shipped template runs to completion when agents do their steps."""
    fl = ScriptedFleet(Core("f1", TEMPLATES), outputs=_outputs)
    for aid, kind in AGENTS:
        fl.agent(aid, kind, CAPS)  # type: ignore[arg-type]
    fl.create("pick_and_deliver", "w1")
    fl.create("robot_person_handover", "w2")
    fl.create("ai_inspection", "w3", data={"min_score": 0.5})
    fl.create("ai_inspection", "w4", data={"min_score": 0.95})
    fl.run()
    for timer_id, at in sorted(fl.core.armed_timers().items()):
        if timer_id.startswith("wait:"):
            fl.at(at)
            fl.feed(TimerFired(timer_id))
    fl.run()
    views = {w: fl.workflow(w) for w in ("w1", "w2", "w3", "w4")}
    assert {w: v.state for w, v in views.items() if v} == dict.fromkeys(views, "completed")
    w3, w4 = fl.workflow("w3"), fl.workflow("w4")
    assert w3 is not None and w3.steps["rework"].state == "skipped"
    assert w4 is not None and w4.steps["ship"].state == "skipped"


def _random_input(core: Core, data: st.DataObject, n: int, now: float) -> Input:
    """One plausible input given the core's current state."""
    wfs = core.workflows()
    held = [(w.id, s) for w in wfs.values() for s in w.steps.values() if s.agent]
    choice = data.draw(st.sampled_from(
        ["create", "conn", "state", "state", "step", "step", "step", "step", "timer", "hub",
         "dup", "arrive", "arrive", "resolve"]))
    if choice == "resolve" and core.conflicts(open_only=True):
        return HubCommand(command_id=f"c{n}", action="resolve_conflict", args={
            "conflict_id": data.draw(st.sampled_from(sorted(core.conflicts(open_only=True))))})
    if choice == "create" or not wfs:
        tname = data.draw(st.sampled_from(sorted(k for k in TEMPLATES if "@" not in k)))
        deps = data.draw(st.lists(st.sampled_from(sorted(wfs) or ["w0"]), max_size=1))
        return HubCommand(command_id=f"c{n}", action="create_workflow", args={
            "template": tname, "workflow_id": f"w{n}", "data": {"min_score": 0.5},
            "priority": data.draw(st.integers(0, 2)), "depends_on": deps,
            "deadline": data.draw(st.sampled_from([None, None, 1010.0, 5000.0]))})
    if choice == "conn":
        aid, kind = data.draw(st.sampled_from(AGENTS))
        return AgentConn(agent_id=aid, kind=kind, online=data.draw(st.booleans()),  # type: ignore[arg-type]
                         capabilities=CAPS, liveness_s=5)
    if choice == "state":
        aid, _ = data.draw(st.sampled_from(AGENTS))
        return AgentState(agent_id=aid, ts=now, battery=data.draw(st.sampled_from([50, 80])),
                          status=data.draw(st.sampled_from(["idle", "busy", "charging"])),
                          node=data.draw(st.sampled_from(NODES)),
                          e_stop=data.draw(st.sampled_from([False, False, True])))
    if choice == "timer":
        timers = sorted(core.armed_timers()) + [f"liveness:{a}" for a, _ in AGENTS]
        return TimerFired(data.draw(st.sampled_from(timers)))
    if choice == "hub":
        wid = data.draw(st.sampled_from(sorted(wfs)))
        action = data.draw(st.sampled_from(
            ["pause_workflow", "resume_workflow", "cancel_workflow", "checkpoint", "op"]))
        if action != "op":
            return HubCommand(command_id=f"c{n}", action=action,  # type: ignore[arg-type]
                              args={"workflow_id": wid})
        wf = wfs[wid]
        return HubCommand(command_id=f"c{n}", action="operator_action", args={
            "workflow_id": wid, "step_id": data.draw(st.sampled_from(sorted(wf.steps))),
            "action": data.draw(st.sampled_from(
                ["retry", "skip", "reassign", "abort", "restore", "rollback"]))})
    if choice == "dup":
        return HubCommand(command_id="c1", action="cancel_workflow", args={"workflow_id": "w1"})
    if choice == "arrive":
        syncs = [(w.id, s.id) for w in wfs.values() for s in w.steps.values() if s.kind == "sync"]
        if syncs:
            wid, sid = data.draw(st.sampled_from(syncs))
            run = core.state.workflows[wid]  # the views hide who finished a step; bias towards them
            done_by = [run.steps[p].last_agent or "" for p in run.steps[sid].spec.participants]
            aid = data.draw(st.sampled_from([a for a in done_by if a] + [a for a, _ in AGENTS]))
            return SyncArrival(agent_id=aid, workflow_id=wid, step_id=sid, ts=now,
                               event_id=f"e{data.draw(st.integers(0, n))}")
    if not held:
        return TimerFired("nothing")
    wid, s = data.draw(st.sampled_from(held))
    common: dict[str, Any] = {
        "agent_id": s.agent, "workflow_id": wid, "step_id": s.id, "attempt": s.attempt,
        "ts": now, "event_id": f"e{data.draw(st.integers(0, n))}"}
    kind = data.draw(st.sampled_from(["accept", "start", "done", "done", "fail", "sync",
                                      "ack", "ack"]))
    unconfirmed = core.state.workflows[wid].steps[s.id].unconfirmed
    if kind == "ack" and unconfirmed is not None:  # confirm or refuse a cancel or a pause
        return CommandAck(agent_id=s.agent, ts=now, event_id=common["event_id"],
                          command_id=unconfirmed[0],
                          outcome=data.draw(st.sampled_from(["done", "done", "refused"])))
    if kind == "accept":
        return StepAccepted(**common)
    if kind == "start":
        return StepStarted(**common)
    if kind == "fail":
        return StepFailed(retryable=data.draw(st.booleans()), **common)
    if kind == "sync":
        return SyncArrival(**common)
    return StepDone(outputs=OUTPUTS.get(s.id, {}), **common)


def assert_replays_identically(make_core: Callable[[], Core], live: Core,
                               inputs: list[tuple[Input, float]], events: list[Event]) -> None:
    """Replaying ``events``, restoring ``live``'s snapshot and re-running ``inputs`` on a
    fresh core (``make_core``) all give ``live``'s state, and the re-run the same events."""
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    snapshot = live.snapshot()
    replayed = make_core()
    for ev in events:
        replayed.apply(ev)
    assert replayed.snapshot() == snapshot
    assert Core.restore(snapshot, live.facility, live.state.templates,
                        live.config).snapshot() == snapshot
    again = make_core()
    log: list[bytes] = []
    for item, now in inputs:
        try:
            fx = again.handle(item, now)
        except CoreError:
            continue
        log.extend(encode_event(e.event) for e in fx if isinstance(e, Append))
    assert log == [encode_event(e) for e in events]
    assert again.snapshot() == snapshot


def random_history(core: Core, data: st.DataObject,
                   draw_input: Callable[[Core, st.DataObject, int, float], Input], most: int,
                   gaps: tuple[float, ...] = (0.5,),
                   ) -> tuple[list[tuple[Input, float]], list[Event]]:
    """Feed ``core`` up to ``most`` drawn inputs, ``gaps`` seconds apart; every input with
    its time (refused ones too: a re-run must refuse them alike) and the events made."""
    inputs: list[tuple[Input, float]] = []
    events: list[Event] = []
    now = 1000.0
    for n in range(1, data.draw(st.integers(5, most))):
        now += data.draw(st.sampled_from(gaps))
        item = draw_input(core, data, n, now)
        inputs.append((item, now))
        try:
            fx = core.handle(item, now)
        except CoreError:
            continue
        events.extend(e.event for e in fx if isinstance(e, Append))
    return inputs, events


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_replay_restore_and_rerun_are_identical(data: st.DataObject) -> None:
    """Replaying the events, restoring the snapshot and re-running the inputs all agree."""
    core = Core("f1", TEMPLATES, config=CONFIG)
    inputs, events = random_history(core, data, _random_input, 80, (0.0, 0.5, 3.0, 20.0))
    assert_replays_identically(lambda: Core("f1", TEMPLATES, config=CONFIG), core, inputs,
                               events)


def test_template_data_defaults_apply_and_are_overridable() -> None:
    """A template's default data fills what the workflow leaves out; the workflow's own wins."""
    fl = ScriptedFleet(Core("f1", TEMPLATES), outputs=_outputs)
    for aid, kind in AGENTS:
        fl.agent(aid, kind, CAPS)  # type: ignore[arg-type]
    fl.create("ai_inspection", "by_default")  # min_score 0.7 from the template: 0.9 ships
    fl.create("ai_inspection", "strict", data={"min_score": 0.95})  # 0.9 < 0.95: rework
    fl.run()
    default, strict = fl.workflow("by_default"), fl.workflow("strict")
    assert default is not None and strict is not None
    assert default.data == {"min_score": 0.7} and strict.data == {"min_score": 0.95}
    assert default.steps["rework"].state == "skipped"
    assert strict.steps["ship"].state == "skipped"
