"""Determinism with coordination in the log: auctions, coalitions and leaders, votes, team
leads, resource spans and deadlocks, contention strategies, work queues and batches, data
writes, stale commands and battery rules — replay, restore and re-run all agree."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_core_replay import (
    AGENTS,
    CAPS,
    NODES,
    TEMPLATES,
    _random_input,
    assert_replays_identically,
)

from edge_runtime.core import (
    Agent,
    Append,
    Core,
    CoreConfig,
    CoreError,
    Event,
    Input,
    Step,
    WorkflowRun,
)
from edge_runtime.templates import load_template
from topics import (
    AgentConn,
    AgentState,
    Bid,
    HubCommand,
    StepDone,
    StepProgress,
    SubStepAssigned,
    SubStepDone,
    SyncArrival,
    Vote,
)

_COORDINATED: list[dict[str, Any]] = [
    {"name": "carry", "steps": [
        {"id": "lift", "kind": "robot", "location": "z1", "team": [
            {"role": "front", "kind": "robot"}, {"role": "back", "kind": "robot"}]},
        {"id": "hand", "kind": "robot", "after": ["lift"], "team": [
            {"role": "robot", "kind": "robot"}, {"role": "person", "kind": "human"}]}]},
    {"name": "voted", "coordination": "consensus", "steps": [
        {"id": "look", "kind": "robot"},
        {"id": "go", "kind": "decision", "after": ["look"], "condition": "true",
         "vote": {"participants": ["robot", "human"], "timeout_s": 60, "default": "else"},
         "then": ["yes"], "else": ["no"]},
        {"id": "yes", "kind": "robot"}, {"id": "no", "kind": "human"}]},
    {"name": "lead", "coordination": "hierarchical", "steps": [
        {"id": "split", "kind": "human", "composite": {"members": ["r1", "r2", "h2"]}}]},
    {"name": "span", "steps": [
        {"id": "enter", "kind": "robot", "resources": ["za"], "hold_until": {"za": "leave"}},
        {"id": "inside", "kind": "robot", "resources": ["zb"], "after": ["enter"]},
        {"id": "leave", "kind": "robot", "after": ["inside"]}]},
    {"name": "span_back", "steps": [
        {"id": "enter", "kind": "robot", "resources": ["zb"], "hold_until": {"zb": "leave"}},
        {"id": "inside", "kind": "robot", "resources": ["za"], "after": ["enter"]},
        {"id": "leave", "kind": "robot", "after": ["inside"]}]},
    {"name": "pinned", "steps": [
        {"id": "dock", "kind": "robot", "agents": {"allowed": ["r1"]},
         "resources": ["station"], "alternatives": {"station": ["station2"]},
         "estimated_duration_s": 20, "outputs": ["v"], "sets": {"level": "v"}}]},
    {"name": "writers", "steps": [
        {"id": "a", "kind": "robot", "outputs": ["v"], "sets": {"level": "v"}},
        {"id": "b", "kind": "human", "outputs": ["v"], "sets": {"level": "v"}},
        {"id": "c", "kind": "robot", "after": ["a", "b"], "when": "data.level > 0"}]},
]
COORDINATED = {t["name"]: load_template(t) for t in _COORDINATED}
ALL = {**TEMPLATES, **COORDINATED}
PROTOCOLS = ["direct", "auction_based", "leader_follower", "consensus", "hierarchical"]
ZONES = {"z1": ("cold",), "z2": ("cold",)}


def _cost(agent: Agent, step: Step, _wf: WorkflowRun) -> float:
    """A deterministic travel cost from the names alone (no map needed)."""
    return float((sum(map(ord, agent.id)) * 7 + sum(map(ord, step.location or "x"))) % 11)


CONFIGS = [
    CoreConfig(exclusive_zones=ZONES, stall_factor=1.0, cost=_cost, max_queued_per_agent=1,
               battery_per_meter=2.0, battery_reserve=10.0, team_patience=1,
               conflict_strategies={"resource": "negotiation", "temporal": "rescheduling"},
               bid_window_s=2.0, award_timeout_s=3.0),
    CoreConfig(exclusive_zones=ZONES, resource_order=False, batch_window_s=5.0, cost=_cost,
               conflict_strategies={"agent_double_booked": "reallocation",
                                    "resource": "operator"},
               concurrent_write="last_writer_wins", stale_command_s=5.0),
    CoreConfig(exclusive_zones=ZONES, prefer_idle=False, max_queued_per_agent=2,
               conflict_strategies={"resource": "rescheduling", "temporal": "priority"}),
]


def _coordination_input(core: Core, data: st.DataObject, n: int, now: float) -> Input | None:
    """One input that drives a coordination feature, or ``None`` if none applies now."""
    state = core.state
    choice = data.draw(st.sampled_from(
        ["create", "protocol", "bid", "bid", "vote", "vote", "sub", "sub", "member", "member",
         "member", "write", "write", "resolve", "stale", "low", "proxy", "hub", "hub"]))
    wfs = sorted(state.workflows)
    if choice == "create" or not wfs:
        return HubCommand(command_id=f"c{n}", action="create_workflow", args={
            "template": data.draw(st.sampled_from(sorted(COORDINATED))),
            "workflow_id": f"w{n}", "priority": data.draw(st.integers(0, 2)),
            "coordination": data.draw(st.sampled_from([None, *PROTOCOLS])),
            "agents": data.draw(st.sampled_from([None, None, ["r1"], ["r1", "r2", "h1"]]))})
    if choice == "protocol":
        return HubCommand(command_id=f"c{n}", action="set_coordination", args={
            "workflow_id": data.draw(st.sampled_from(wfs)),
            "protocol": data.draw(st.sampled_from(PROTOCOLS)),
            "agents": data.draw(st.sampled_from([None, ["r2", "h2"]]))})
    if choice == "stale":
        return HubCommand(command_id=f"c{n}", ts=now - data.draw(st.sampled_from([0, 30])),
                          action=data.draw(st.sampled_from(["pause_workflow", "resume_workflow"])),
                          args={"workflow_id": data.draw(st.sampled_from(wfs)),
                                "expected_seq": data.draw(st.integers(0, state.seq + 1))})
    if choice == "hub":  # the hub API's actions (tests/test_core_hub_commands.py)
        return _hub_action(core, data, n, wfs)
    if choice == "low":
        aid, _ = data.draw(st.sampled_from(AGENTS))
        return AgentState(agent_id=aid, ts=now, battery=data.draw(st.sampled_from([5, 95])),
                          node=data.draw(st.sampled_from(NODES)))
    if choice == "proxy":
        aid, kind = data.draw(st.sampled_from(AGENTS))
        return AgentConn(agent_id=aid, kind=kind, online=True, capabilities=CAPS,  # type: ignore[arg-type]
                         liveness_s=5, bids=data.draw(st.booleans()))
    eid = f"e{data.draw(st.integers(0, n))}"
    if choice == "bid" and state.auctions:
        auction = state.auctions[data.draw(st.sampled_from(sorted(state.auctions)))]
        return Bid(agent_id=data.draw(st.sampled_from([*auction.invited, "r1"])), ts=now,
                   event_id=eid, cfp_id=auction.id, cost=data.draw(st.sampled_from([1.0, 4.0])))
    runs = [(wf, s) for wf in state.workflows.values() for s in wf.steps.values()]
    if choice == "vote":
        ballots = [(wf, s) for wf, s in runs if s.ballot is not None]
        if ballots:
            wf, s = data.draw(st.sampled_from(ballots))
            assert s.ballot is not None
            voters = [*s.ballot["voters"], "a1"]
            return Vote(agent_id=data.draw(st.sampled_from(voters)), ts=now,
                        event_id=eid, vote_id=s.ballot["id"], workflow_id=wf.id, step_id=s.id,
                        choice=data.draw(st.sampled_from(["then", "else"])))
    if choice == "sub":
        leads = [(wf, s) for wf, s in runs if s.spec.composite is not None and s.agent]
        if leads:
            wf, s = data.draw(st.sampled_from(leads))
            common: dict[str, Any] = {"agent_id": s.agent, "ts": now, "event_id": eid,
                                      "workflow_id": wf.id, "step_id": s.id,
                                      "attempt": s.attempt}
            sub_id = data.draw(st.sampled_from(["p1", "p2"]))
            if data.draw(st.booleans()):
                return SubStepDone(sub_id=sub_id, **common)
            return SubStepAssigned(sub_id=sub_id, member=data.draw(st.sampled_from(
                ["r1", "r2", "h2"])), **common)
    if choice == "member":
        teams = [(wf, s) for wf, s in runs if s.team]
        if teams:
            wf, s = data.draw(st.sampled_from(teams))
            aid = data.draw(st.sampled_from(sorted(s.team.values())))
            common = {"agent_id": aid, "ts": now, "event_id": eid, "workflow_id": wf.id,
                      "step_id": s.id, "attempt": s.attempt}
            kind = data.draw(st.sampled_from(["arrive", "arrive", "progress", "done"]))
            if kind == "arrive":
                return SyncArrival(**common)
            if kind == "progress":
                return StepProgress(progress=0.5, **common)
            return StepDone(outputs={}, **common)
    if choice == "write":
        writers = [(wf, s) for wf, s in runs if s.spec.sets and s.agent]
        if writers:
            wf, s = data.draw(st.sampled_from(writers))
            return StepDone(agent_id=s.agent or "", ts=now, event_id=eid, workflow_id=wf.id,
                            step_id=s.id, attempt=s.attempt,
                            outputs={"v": data.draw(st.integers(0, 3))})
    if choice == "resolve" and state.open_conflicts:
        conflict = data.draw(st.sampled_from(sorted(c.id for c in state.open_conflicts.values())))
        args: dict[str, Any] = {"conflict_id": conflict, "resolution": "op"}
        pick = data.draw(st.sampled_from([None, "r1", "r2", "dock", "a", "b", "station2"]))
        if pick is not None:
            args["choice"] = pick
        return HubCommand(command_id=f"c{n}", action="resolve_conflict", args=args)
    return None


def _hub_action(core: Core, data: st.DataObject, n: int, wfs: list[str]) -> HubCommand:
    """update_workflow, recover, list_checkpoints, sync_arrival or a scoped stop/release."""
    wid = data.draw(st.sampled_from(wfs))
    wf = core.state.workflows[wid]
    kind = data.draw(st.sampled_from(["update", "recover", "list", "sync", "stop", "release",
                                      "checkpoint"]))
    args: dict[str, Any] = {"workflow_id": wid}
    if kind == "update":
        args.update(data.draw(st.sampled_from([
            {"priority": 3}, {"data": {"level": 2}}, {"deadline": 1100.0},
            {"clear_deadline": True}])))
        return HubCommand(command_id=f"c{n}", action="update_workflow", args=args)
    if kind == "recover":
        args["strategy"] = data.draw(st.sampled_from(
            ["automatic_retry", "checkpoint_restore", "partial_rollback"]))
        if args["strategy"] == "partial_rollback" and wf.checkpoints:
            args["checkpoint_id"] = data.draw(st.sampled_from(sorted(wf.checkpoints)))
        return HubCommand(command_id=f"c{n}", action="recover", args=args)
    if kind == "checkpoint":
        return HubCommand(command_id=f"c{n}", action="checkpoint", args=args)
    if kind == "list":
        return HubCommand(command_id=f"c{n}", action="list_checkpoints", args=args)
    if kind == "sync":
        args["step_id"] = data.draw(st.sampled_from(sorted(wf.steps)))
        args["agent_id"] = data.draw(st.sampled_from([a for a, _ in AGENTS]))
        return HubCommand(command_id=f"c{n}", action="sync_arrival", args=args)
    zone = {"zone": data.draw(st.sampled_from([None, "cold"]))}
    if kind == "stop":
        return HubCommand(command_id=f"c{n}", action="facility_stop",
                          args={**zone, "reason": "drill"})
    return HubCommand(command_id=f"c{n}", action="facility_release", args=zone)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_coordination_replays_restores_and_reruns_identically(data: st.DataObject) -> None:
    """With every coordination feature in the log, replay ≡ restore ≡ re-run ≡ live."""
    config = data.draw(st.sampled_from(CONFIGS))
    core = Core("f1", ALL, config=config)
    inputs: list[tuple[Input, float]] = []
    events: list[Event] = []
    now = 1000.0
    # Everyone online first, so that teams can form and votes have voters.
    start: list[Input] = [AgentConn(agent_id=a, kind=k, online=True, capabilities=CAPS,  # type: ignore[arg-type]
                                    liveness_s=30) for a, k in AGENTS]
    start += [AgentState(agent_id=a, ts=now, node="dock", battery=90) for a, _ in AGENTS]
    for n in range(1, data.draw(st.integers(5, 120))):
        now += data.draw(st.sampled_from([0.0, 0.5, 3.0, 20.0]))
        item = start.pop(0) if start else None
        if item is None and data.draw(st.booleans()):
            item = _coordination_input(core, data, n, now)
        if item is None:
            item = _random_input(core, data, n, now)
        inputs.append((item, now))
        try:
            fx = core.handle(item, now)
        except CoreError:
            assert not core.needs_rebuild
            continue
        events.extend(e.event for e in fx if isinstance(e, Append))
    assert_replays_identically(lambda: Core("f1", ALL, config=config), core, inputs, events)
