"""Determinism of typed and external dependencies: random workflows linked in every way,
with steps finishing, failing, cancelled and external verdicts arriving, replay and restore
to the same state and re-run to the same events."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_core_replay import assert_replays_identically, random_history

from edge_runtime.core import Core, Input
from edge_runtime.templates import load_template
from topics import AgentConn, HubCommand, StepDone, StepFailed

TEMPLATES = {t.name: t for t in (
    load_template({"name": "two", "data": {"lot": "L1"}, "steps": [
        {"id": "a", "kind": "robot", "resources": ["dock_1"]},
        {"id": "b", "kind": "robot", "after": ["a"]}]}),
    load_template({"name": "one", "steps": [{"id": "s", "kind": "robot"}]}),
)}
CONDITIONS: dict[str, list[dict[str, Any]]] = {
    "sequential": [{}], "parallel": [{}],
    "conditional": [{"when": 'outputs.a.grade == "A"'}, {"when": "data.lot == 'L1'"}],
    "resource_based": [{"resources": ["dock_1"]}],
    "data_flow": [{"outputs": {"x": "a.grade"}}, {"outputs": {"lot": "data.lot"}}],
}


def _core() -> Core:
    return Core("f1", TEMPLATES)


def _input(core: Core, data: st.DataObject, n: int, now: float) -> Input:
    """One plausible input: a linked workflow, an agent report, a cancel or a verdict."""
    wfs = core.workflows()
    choice = data.draw(st.sampled_from(["create", "create", "report", "report", "report",
                                        "cancel", "resolve", "add", "agent"]))
    if choice == "agent" or not core.agents():
        return AgentConn(agent_id=f"r{n % 3}", kind="robot", online=True, liveness_s=3600)
    if choice in ("create", "add") or not wfs:
        type_ = data.draw(st.sampled_from(sorted(CONDITIONS)))
        dep: dict[str, Any] = {
            "depends_on": data.draw(st.sampled_from(sorted(wfs) or ["w0"])), "type": type_,
            "conditions": data.draw(st.sampled_from(CONDITIONS[type_])),
            "facility": data.draw(st.sampled_from([None, None, "f2"]))}
        if choice == "add" and wfs:
            return HubCommand(command_id=f"c{n}", action="add_dependency", args={
                "workflow_id": data.draw(st.sampled_from(sorted(wfs))), **dep})
        return HubCommand(command_id=f"c{n}", action="create_workflow", args={
            "template": data.draw(st.sampled_from(["one", "two"])), "workflow_id": f"w{n}",
            "dependencies": data.draw(st.lists(st.just(dep), max_size=1))})
    wid = data.draw(st.sampled_from(sorted(wfs)))
    if choice == "cancel":
        return HubCommand(command_id=f"c{n}", action="cancel_workflow",
                          args={"workflow_id": wid})
    if choice == "resolve":
        external = [d for d in wfs[wid].dependencies if d[3] is not None] or [
            ("w0", "", {}, "f2", "")]
        dep_id, _, _, facility, _ = data.draw(st.sampled_from(external))
        verdict = data.draw(st.sampled_from(["release", "release", "fail", "skip"]))
        return HubCommand(command_id=f"c{n}", action="resolve_dependency", args={
            "workflow_id": wid, "depends_on": dep_id, "facility": facility,
            "verdict": verdict, "data": {"via": "hub"} if verdict == "release" else {}})
    held = [(w.id, s) for w in wfs.values() for s in w.steps.values() if s.agent]
    if not held:
        return AgentConn(agent_id=f"r{n % 3}", kind="robot", online=True, liveness_s=3600)
    wid, s = data.draw(st.sampled_from(held))
    common: dict[str, Any] = {"agent_id": s.agent, "workflow_id": wid, "step_id": s.id,
                              "attempt": s.attempt, "ts": now, "event_id": f"e{n}"}
    if data.draw(st.booleans()):
        return StepDone(outputs={"grade": data.draw(st.sampled_from(["A", "B"]))}, **common)
    return StepFailed(retryable=False, **common)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_typed_dependencies_replay_restore_and_rerun_identically(data: st.DataObject) -> None:
    """Replaying, restoring and re-running a history with typed and external dependencies
    all give the same state and the same events."""
    core = _core()
    inputs, events = random_history(core, data, _input, 60)
    assert_replays_identically(_core, core, inputs, events)
