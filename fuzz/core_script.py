"""Random-but-valid input scripts for a real edge ``Core``, driven by any source of choices.

One generator serves both fuzzers: Hypothesis (``tests/test_fuzz_core.py``) and the
atheris harness (``fuzz/core_inputs.py``). Each input is a well-formed message, as the
edge's decoders would hand it to the core, but its ids, states and arguments are drawn
from pools that mix what the core knows (its workflows, steps, agents, timers, and the ids
it published: auctions, ballots, commands) with things it does not. ``run_script`` checks
the core's contract on every input: it returns effects or raises a ``CoreError``, and a
refused input changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from edge_runtime.core import (
    Append,
    Core,
    CoreConfig,
    CoreError,
    Input,
    Publish,
    Restarted,
    Template,
    TimerFired,
    encode_event,
)
from edge_runtime.templates import load_template, load_templates
from topics import (
    AgentConn,
    AgentState,
    Ballot,
    Bid,
    Cfp,
    CommandAck,
    HubCommand,
    StepAccepted,
    StepDone,
    StepFailed,
    StepProgress,
    StepStarted,
    SubStepAssigned,
    SubStepDone,
    SyncArrival,
    Vote,
)

__all__ = ["CONFIGS", "TEMPLATES", "Pick", "Script", "random_input", "replay_script", "run_script"]

T = TypeVar("T")
Pick = Callable[[Sequence[Any]], Any]
"""Chooses one item of a non-empty sequence (Hypothesis ``sampled_from``, atheris bytes)."""

_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES: dict[str, Template] = {
    **load_templates(_ROOT / "templates"),
    "meet": load_template({"name": "meet", "steps": [
        {"id": "bring", "kind": "robot"}, {"id": "walk", "kind": "human"},
        {"id": "meet", "kind": "sync", "participants": ["bring", "walk"]},
        {"id": "after", "kind": "human", "after": ["meet"]}]}),
    "saga": load_template({"name": "saga", "steps": [
        {"id": f"s{i}", "kind": "robot", "after": [f"s{i - 1}"] if i > 1 else [],
         "retry": {"max_attempts": 2},
         "compensation": {"kind": "robot", "action": f"undo{i}"}} for i in range(1, 4)]}),
}
"""The shipped templates plus a meeting (sync) and a compensating saga."""

CONFIGS: tuple[CoreConfig, ...] = (
    CoreConfig(exclusive_zones={"z1": ("cold",), "z2": ("cold",)}, stall_factor=1.0),
    CoreConfig(manual_intervention=False, archive_terminal=False, max_queued_per_agent=2,
               battery_reserve=20.0, battery_per_action=5.0),
)
"""Two engine set-ups: zones and stalls; no operator, no archiving, work queues, battery."""

AGENTS = (("r1", "robot"), ("r2", "robot"), ("h1", "human"), ("h2", "human"), ("a1", "ai"))
CAPS = ("picking", "fitter", "rework", "tote_carrier", "shelf_lift", "camera", "pallet_jack",
        "defect_detection")
NODES = ("dock", "z1", "z2", "charger")
ACTIONS = tuple(HubCommand.model_fields["action"].annotation.__args__)  # type: ignore[union-attr]
"""Every hub command action, those the shell serves (``replay``) included."""
_WF = ("workflow_id",)
ACTION_ARGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "create_workflow": (("template", "workflow_id"),
                        ("priority", "deadline", "data", "depends_on", "coordination",
                         "agents", "labels")),
    **dict.fromkeys(("cancel_workflow", "pause_workflow", "resume_workflow"),
                    (_WF, ("expected_seq", "reason"))),
    "set_coordination": (("workflow_id", "protocol"), ("agents", "expected_seq")),
    "add_dependency": (_WF, ("depends_on", "type", "facility", "step", "after")),
    "resolve_dependency": (("workflow_id", "depends_on", "facility", "verdict"), ("reason",)),
    "checkpoint": ((), ("workflow_id", "label")),
    "operator_action": (("workflow_id", "action"), ("step_id", "checkpoint", "then", "signal")),
    "resolve_conflict": (("conflict_id",), ("choice",)),
    "update_workflow": (_WF, ("priority", "deadline", "clear_deadline", "data", "labels")),
    "recover": (("workflow_id", "strategy"),
                ("step_id", "checkpoint_id", "action", "then", "signal")),
    "list_checkpoints": (_WF, ()), "replay": ((), ()),
    "sync_arrival": (("workflow_id", "step_id", "agent_id"), ()),
    "facility_stop": (("reason",), ("zone",)), "facility_release": ((), ("zone",)),
    "lend_agent": (("agent_id", "to"), ("reason",)), "reclaim_agent": (("agent_id",), ()),
    "lend_resource": (("resource", "to"), ("reason",)),
    "reclaim_resource": (("resource",), ()),
    "release_booking": (("workflow_id", "step_id", "to"), ("agent_id", "resource")),
}
"""Each action's required and optional argument names (the edge's argument models)."""


@dataclass
class Script:
    """What one run fed and made: inputs with their time, event bytes, refusal reasons."""

    inputs: list[tuple[Input, float]] = field(default_factory=list)
    events: list[bytes] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    seen: dict[str, list[str]] = field(default_factory=dict)
    """Ids the core published (``cfp``, ``vote``, ``command``), so inputs can answer them."""


def _value(pick: Pick, core: Core, seen: dict[str, list[str]], key: str, n: int) -> Any:
    """A plausible value, or a wrong one, for the hub-command argument ``key``."""
    wfs = sorted(core.workflows())
    pools: dict[str, Sequence[Any]] = {
        "workflow_id": [*wfs, f"w{n}", "ghost"], "depends_on": [*wfs, "ghost", [*wfs[:2]]],
        "template": [*sorted(TEMPLATES), "missing"], "label": ["manual", "cp1"],
        "step_id": [*sorted({s for w in core.workflows().values() for s in w.steps}), "nope"],
        "action": ["retry", "skip", "reassign", "abort", "restore", "rollback", "signal"],
        "conflict_id": [*sorted(core.conflicts()), "c-none"],
        "agent_id": [a for a, _ in AGENTS] + ["x9"], "facility": ["f1", "f2"],
        "type": ["sequential", "parallel", "conditional", "resource_based", "data_flow"],
        "verdict": ["release", "fail", "skip"], "then": ["abort", "retry"],
        "strategy": ["automatic_retry", "checkpoint_restore", "partial_rollback",
                     "manual_intervention", "priority"],
        "checkpoint": ["cp-1", "manual"], "checkpoint_id": ["cp-1", "manual"],
        "priority": [0, 5, -3, 2000], "deadline": [None, 1001.0, 5000.0, -1.0],
        "data": [{}, {"min_score": 0.5}, {"k": [1, 2]}],
        "protocol": ["direct", "auction_based", "leader_follower", "consensus",
                     "hierarchical"], "zone": [None, "cold", "hot"],
        "coordination": ["direct", "auction_based", "leader_follower", "consensus"],
        "reason": ["", "operator"], "resource": ["dock", "lift"], "to": ["f2", "f1"],
        "expected_seq": [None, 0, core.last_seq, core.last_seq + 5], "signal": ["go"],
        "labels": [{"team": "a"}, {"bad key": "x"}], "clear_deadline": [True, False],
        "choice": [None, "priority", "negotiation", "reallocation", "rescheduling"],
        "agents": [["r1", "r2"], ["h1"]], "step": ["pick", "meet"], "after": ["deliver"],
    }
    return pick(pools[key])


def _hub_command(pick: Pick, core: Core, seen: dict[str, list[str]], n: int) -> HubCommand:
    """A command with a random action and a random few of the argument names."""
    action = pick(["create_workflow"] * 4 + list(ACTIONS))
    required, optional = ACTION_ARGS[action]
    keys = set(required)
    for _ in range(pick(range(3))):
        keys.add(pick(optional or required or ("workflow_id",)))
    args: dict[str, Any] = {k: _value(pick, core, seen, k, n) for k in sorted(keys)}
    mutation = pick(["none"] * 12 + ["drop", "extra", "wrong_type"])
    if mutation == "drop" and args:  # now and then what the edge must refuse as bad_args
        args.pop(pick(sorted(args)))
    elif mutation == "extra":
        args["colour"] = "red"
    elif mutation == "wrong_type" and args:
        args[pick(sorted(args))] = pick([7, "", [1], {"a": None}, True])
    command_id = pick([f"c{n}", f"c{n}", "c1", *seen.get("command", [])[-3:]])  # resends too
    return HubCommand(command_id=command_id, action=action, args=args,
                      consistency=pick(["eventual", "eventual", "strong"]))


def _step_input(pick: Pick, core: Core, seen: dict[str, list[str]], n: int,
                now: float) -> Input:
    """An agent's report about a step: usually one it holds, sometimes one it does not."""
    wfs = core.workflows()
    held = [(w.id, s) for w in wfs.values() for s in w.steps.values() if s.agent]
    if held and pick([True, True, True, False]):
        wid, step = pick(held)
        agent, sid, attempt = step.agent, step.id, step.attempt
    else:
        any_steps = [(w.id, s.id) for w in wfs.values() for s in w.steps.values()]
        wid, sid = pick(any_steps or [("w0", "s0")])
        agent, attempt = pick([a for a, _ in AGENTS]), pick([1, 2, 3])
    common: dict[str, Any] = {"agent_id": agent, "workflow_id": wid, "step_id": sid,
                              "attempt": attempt, "ts": now,
                              "event_id": f"e{pick(range(max(n, 1)))}"}
    # Half the time the report a well-behaved agent would send next, so work gets done.
    natural = {"assigned": "accept", "preparing": "start", "executing": "done"}
    step_state = core.state.workflows[wid].steps[sid].state if held and (
        wid in core.state.workflows and sid in core.state.workflows[wid].steps) else ""
    kind = pick([natural.get(step_state, "done")] * 11
                + ["accept", "start", "progress", "done", "fail", "sync", "sub", "subdone",
                   "ack", "vote", "bid"])
    if kind == "accept":
        return StepAccepted(**common)
    if kind == "start":
        return StepStarted(**common)
    if kind == "progress":
        return StepProgress(progress=pick([0.0, 0.5, 1.0]), **common)
    if kind == "done":
        return StepDone(outputs=pick([{}, {"tote_id": "T1"}, {"defect": False, "score": 0.9},
                                      {"image_set": "I1", "serial": "S1"}]), **common)
    if kind == "fail":
        return StepFailed(retryable=pick([True, False]), error_type=pick(["error", "jam"]),
                          **common)
    if kind == "sync":
        return SyncArrival(**common)
    if kind == "sub":
        return SubStepAssigned(sub_id=pick(["u1", "u2"]), member=pick(["r1", "h1"]), **common)
    if kind == "subdone":
        return SubStepDone(sub_id=pick(["u1", "u2"]), **common)
    base = {"agent_id": agent, "ts": now, "event_id": common["event_id"]}
    if kind == "ack":
        return CommandAck(command_id=pick([*seen.get("command", [])[-5:], "k0"]),
                          outcome=pick(["done", "done", "refused"]), **base)
    if kind == "vote":
        return Vote(vote_id=pick([*seen.get("vote", [])[-5:], "v0"]), workflow_id=wid,
                    step_id=sid, choice=pick(["then", "else"]), **base)
    return Bid(cfp_id=pick([*seen.get("cfp", [])[-5:], "cfp0"]),
               cost=pick([0.0, 1.5, 40.0, 1e9]), eta_s=pick([0.0, 12.0]), **base)


def random_input(pick: Pick, core: Core, seen: dict[str, list[str]], n: int,
                 now: float) -> Input:
    """One well-formed input, chosen with ``pick``, given what the core holds now."""
    choice = pick(["hub", "hub", "conn", "state", "state", "step", "step", "step", "step",
                   "timer", "restart"])
    if choice == "hub" or (not core.workflows() and choice == "step"):
        return _hub_command(pick, core, seen, n)
    if choice == "conn":
        aid, kind = pick(AGENTS)
        return AgentConn(agent_id=aid, kind=pick([kind, kind, "robot"]),
                         online=pick([True, True, False]),
                         capabilities=list(CAPS[: pick(range(len(CAPS) + 1))]),
                         liveness_s=pick([5.0, 60.0, 60.0]), bids=pick([True, False]))
    if choice == "state":
        aid, _ = pick(AGENTS)
        return AgentState(agent_id=aid, ts=now, battery=pick([None, 3.0, 50.0, 100.0]),
                          status=pick(["idle", "busy", "charging", "error", "paused"]),
                          node=pick([None, *NODES]), e_stop=pick([False] * 5 + [True]),
                          mode=pick(["automatic", "automatic", "manual"]),
                          x=pick([None, 0.0, 12.5]), y=pick([None, 3.0]))
    if choice == "timer":
        armed = sorted(core.armed_timers())
        return TimerFired(pick([*armed, *armed, "liveness:r1", "nothing", "retry:w/s"]))
    if choice == "restart":
        return Restarted()
    return _step_input(pick, core, seen, n, now)


def _remember(seen: dict[str, list[str]], effects: Sequence[Any]) -> None:
    """Keep the ids the core published, so later inputs can answer them."""
    for effect in effects:
        if not isinstance(effect, Publish):
            continue
        message = effect.message
        if isinstance(message, Cfp):
            seen.setdefault("cfp", []).append(message.cfp_id)
        elif isinstance(message, Ballot):
            seen.setdefault("vote", []).append(message.vote_id)
        command_id = getattr(message, "command_id", None)
        if isinstance(command_id, str):
            seen.setdefault("command", []).append(command_id)


def run_script(pick: Pick, steps: int, config: CoreConfig = CONFIGS[0]) -> Script:
    """Feed a fresh core ``steps`` inputs chosen by ``pick``; check its contract on each.

    An input either gives effects, or raises ``CoreError`` and leaves the core's snapshot
    and sequence untouched; anything else propagates (a fuzzer's crash)."""
    core = Core("f1", TEMPLATES, config=config)
    script = Script()
    now = 1000.0
    for n in range(1, steps + 1):
        now = round(now + pick([0.0, 0.5, 0.5, 0.5, 3.0, 20.0, 400.0]), 6)
        item = random_input(pick, core, script.seen, n, now)
        script.inputs.append((item, now))
        before, seq = core.snapshot(), core.last_seq
        try:
            effects = core.handle(item, now)
        except CoreError as exc:
            script.refusals.append(exc.reason)
            assert core.last_seq == seq and not core.needs_rebuild, f"{item!r} half-applied"
            assert core.snapshot() == before, f"refused {item!r} changed the core"
            continue
        script.events.extend(encode_event(e.event) for e in effects if isinstance(e, Append))
        _remember(script.seen, effects)
    return script


def replay_script(script: Script, config: CoreConfig = CONFIGS[0]) -> list[bytes]:
    """The same inputs, at the same times, on a fresh core: the event bytes it makes."""
    core = Core("f1", TEMPLATES, config=config)
    events: list[bytes] = []
    for item, now in script.inputs:
        try:
            effects = core.handle(item, now)
        except CoreError:
            continue
        events.extend(encode_event(e.event) for e in effects if isinstance(e, Append))
    return events
