"""The plain functions behind the Workflows, Dependencies and Recovery pages: filters as
query parameters, the nested state path, what a step waits for, the step timeline, the
audit trail's who and why, the template form, the dependency graph's DOT, and recovery
bodies. No stack: JSON in the hub's shapes in, rows and text out."""

from __future__ import annotations

import ast
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from dashboard._graph import COLOURS, Edge, Graph, dot, from_dependencies, from_workflows
from dashboard._recovery import checkpoint_rows, operator_rows, recover_body
from dashboard._workflows import audit_rows, list_params, state_path, workflow_rows
from dashboard._workflows_form import create_body, params_of
from dashboard._workflows_steps import (
    coordination_waits,
    template_of,
    timeline_rows,
    waiting_for,
)

PICK = {"name": "pick", "version": 2, "data": {"qty": 1, "rush": False, "note": "x",
                                               "weight": 1.5, "bins": [1, 2]},
        "steps": [
            {"id": "fetch", "kind": "robot", "capabilities": ["lift"], "after": [],
             "inputs": {}, "participants": [], "resources": []},
            {"id": "check", "kind": "human", "capabilities": [], "after": ["fetch"],
             "inputs": {}, "participants": [], "resources": ["scale"]},
            {"id": "meet", "kind": "sync", "capabilities": [], "after": [], "inputs": {},
             "participants": ["fetch", "check"], "resources": []},
        ]}


def _wf(state: str = "active.executing.step_execution", **kw: Any) -> dict[str, Any]:
    steps = kw.pop("steps", [("fetch", "robot", "allocating"), ("check", "human", "pending"),
                             ("meet", "sync", "pending")])
    return {"id": "w1", "facility": "fa", "template": "pick", "version": 2, "state": state,
            "priority": 3, "steps": [{"id": i, "kind": k, "state": s} for i, k, s in steps],
            "depends_on": [], "dependencies": [], "labels": {}, "created_at": 0.0, **kw}


def _ev(seq: int, kind: str, t: float, **data: Any) -> dict[str, Any]:
    return {"facility": "fa", "seq": seq, "hlc": int(t * 1000) << 16, "kind": kind,
            "workflow_id": "w1", "data": data}


def test_state_path_nests_the_dotted_state() -> None:
    """``active.executing.step_validation`` reads as three nested levels."""
    assert state_path("active.executing.step_validation") == \
        "active \u203a executing \u203a step_validation"
    assert state_path("paused") == "paused"


def test_list_params_keeps_only_given_filters_and_whole_days() -> None:
    """Empty filters are left out; since/until cover whole UTC days, until included."""
    p = list_params(facility="fa", state="", label=" team=a ", since=date(2026, 1, 2),
                    until=date(2026, 1, 2))
    assert p == {"facility": "fa", "label": "team=a", "since": 1767312000.0,
                 "until": 1767312000.0 + 86400 - 0.001}


@pytest.mark.parametrize("kw", [{"label": "team"}, {"since": date(2026, 1, 3),
                                                    "until": date(2026, 1, 2)}])
def test_list_params_refuses_bad_filters_readably(kw: dict[str, Any]) -> None:
    """A label without ``=`` or days in the wrong order is a sentence, not a request."""
    with pytest.raises(ValueError, match=r"label|before"):
        list_params(**kw)


def test_workflow_rows_count_finished_steps_and_show_labels() -> None:
    """A row has the nested state, finished/all steps and labels as ``k=v``."""
    row = workflow_rows([_wf(steps=[("a", "robot", "done"), ("b", "robot", "pending")],
                             labels={"team": "x"})])[0]
    assert (row["state"], row["steps"], row["labels"]) == \
        ("active \u203a executing \u203a step_execution", "1/2", "team=x")


def test_waiting_for_names_agent_steps_and_sync_point() -> None:
    """An allocating step waits for an able agent; the next for its predecessor; the sync
    step for its participants to finish."""
    w = waiting_for(_wf(), template_of([PICK], "pick"))
    assert w["fetch"] == "a free robot agent with capabilities lift"
    assert w["check"] == "steps fetch to finish"
    assert w["meet"] == "steps fetch, check to finish"


def test_waiting_for_prefers_the_edges_reason() -> None:
    """A step whose edge says why it has no agent shows that reason, not the template's."""
    wf = _wf()
    wf["steps"][0]["waiting_for"] = "no robot agent with capabilities lift has joined"
    w = waiting_for(wf, template_of([PICK], "pick"))
    assert w["fetch"] == "no robot agent with capabilities lift has joined"


def test_waiting_for_resources_dependencies_pause_and_operator() -> None:
    """Resources, the workflow's dependencies, a pause and an operator are named."""
    done = [("fetch", "robot", "done"), ("check", "human", "pending"), ("meet", "sync", "pending")]
    assert waiting_for(_wf(steps=done), PICK)["check"] == "resources scale to be free"
    pending = _wf("pending", dependencies=[{"source": "w0", "facility": "fb",
                                            "type": "sequential", "status": "waiting"}])
    assert waiting_for(pending, PICK)["fetch"] == \
        "the workflow's dependencies: fb/w0 (sequential)"
    assert waiting_for(_wf("paused"), PICK)["fetch"] == "the workflow to resume"
    failed = _wf(steps=[("fetch", "robot", "failed")], awaiting_operator=["fetch"])
    assert waiting_for(failed, PICK)["fetch"].startswith("an operator")


def test_timeline_has_a_bar_per_run_and_open_runs_end_now() -> None:
    """Started → done is one bar; a retried step gets a second; a running one ends now."""
    rows = timeline_rows([_ev(1, "step_assigned", 10, step="fetch"),
                          _ev(2, "step_started", 11, step="fetch"),
                          _ev(3, "step_failed", 12, step="fetch"),
                          _ev(4, "step_started", 13, step="fetch"),
                          _ev(5, "step_done", 15, step="fetch"),
                          _ev(6, "step_skipped", 16, step="check"),
                          _ev(7, "step_started", 17, step="meet")], now=20)
    assert [(r["step"], r["start"], r["end"], r["outcome"]) for r in rows] == [
        ("fetch", 11, 12, "failed"), ("fetch", 13, 15, "done"), ("check", 16, 16, "skipped"),
        ("meet", 17, 20, "running")]


def test_audit_rows_say_who_and_why() -> None:
    """A hub command's reply names the token and the reason; an agent's event the agent."""
    rows = audit_rows([
        _ev(1, "command_reply", 1, cmd="c1", hub_command={"who": "ann", "reason": "jam",
                                                          "action": "pause_workflow"}),
        _ev(2, "step_failed", 2, step="fetch", agent="r1", error="gripper")])
    assert (rows[0]["who"], rows[0]["why"], rows[0]["event"]) == \
        ("ann", "jam", "command_reply (pause_workflow)")
    assert (rows[1]["who"], rows[1]["why"], rows[1]["step"]) == ("r1", "gripper", "fetch")


def test_form_params_are_typed_by_their_defaults() -> None:
    """Each data variable becomes an input of its default's type (JSON otherwise)."""
    kinds = {p.name: p.kind for p in params_of(PICK)}
    assert kinds == {"qty": "int", "rush": "bool", "note": "text", "weight": "float",
                     "bins": "json"}


def test_create_body_sends_only_changed_variables_and_labels() -> None:
    """Defaults stay out of ``data``; JSON is parsed; labels become a mapping."""
    body = create_body(PICK, "fa", {"qty": 4, "rush": False, "bins": "[3]", "note": "x"},
                       priority=5, workflow_id=" w9 ", labels="team=a, line=2")
    assert body == {"facility": "fa", "template": "pick", "priority": 5,
                    "data": {"qty": 4, "bins": [3]}, "workflow_id": "w9",
                    "labels": {"team": "a", "line": "2"}}


def test_create_body_refuses_bad_json_and_labels() -> None:
    """Bad JSON or a label without ``=`` is a readable ``ValueError``."""
    with pytest.raises(ValueError, match="bins: not JSON"):
        create_body(PICK, "fa", {"bins": "[3"})
    with pytest.raises(ValueError, match="key=value"):
        create_body(PICK, "fa", {}, labels="team")


def test_dot_colours_states_and_dashes_cross_facility_edges() -> None:
    """Nodes are filled by state, grouped per facility; a cross-facility edge is dashed,
    a waiting one red, a local resolved one plain."""
    g = from_workflows([
        {"id": "a", "facility": "fa", "state": "completed", "depends_on": [],
         "dependencies": []},
        {"id": "b", "facility": "fa", "state": "active.executing", "depends_on": ["a"],
         "dependencies": []},
        {"id": "c", "facility": "fb", "state": "pending", "depends_on": [],
         "dependencies": [{"source": "b", "facility": "fa", "type": "data_flow",
                           "status": "waiting"}]}])
    text = dot(g)
    assert f'"fa/a" [label="a\\ncompleted", fillcolor="{COLOURS["completed"]}"];' in text
    assert f'"fb/c" [label="c\\npending", fillcolor="{COLOURS["pending"]}"];' in text
    assert '"fa/a" -> "fa/b" [label="sequential"];' in text
    assert '"fa/b" -> "fb/c" [label="data_flow", style=dashed, color="#cb181d"];' in text
    assert text.count("subgraph cluster_") == 2


def test_dot_of_one_workflow_has_sources_dependants_and_focus() -> None:
    """A workflow's neighbourhood: its sources point at it, it points at its dependants;
    an unread node is white; the workflow itself is bold; quotes are escaped."""
    deps = {"workflow_id": "w1", "facility": "fa", "depends_on": [],
            "dependencies": [{"source": "w0", "facility": "fa", "type": "parallel",
                              "status": "released"}],
            "dependants": ['fb/x"y']}
    g = from_dependencies(deps, {"fa/w1": "paused"})
    text = dot(g, focus="fa/w1")
    assert '"fa/w0" -> "fa/w1" [label="parallel"];' in text
    assert '"fa/w1" -> "fb/x\\"y" [label="dependant", style=dashed' in text
    assert 'fillcolor="#ffffff"' in text and "penwidth=3" in text


def test_graph_links_once() -> None:
    """The same dependency seen twice is one edge."""
    g = Graph()
    g.link(Edge("fa/a", "fa/b"))
    g.link(Edge("fa/a", "fa/b"))
    assert len(g.edges) == 1 and set(g.states) == {"fa/a", "fa/b"}


def test_recover_body_takes_only_the_strategy_fields() -> None:
    """Each strategy sends its own fields; operator actions on a step need the step."""
    assert recover_body("checkpoint_restore", checkpoint="cp3", step_id="s") == \
        {"strategy": "checkpoint_restore", "checkpoint": "cp3"}
    assert recover_body("manual_intervention", action="skip", step_id="s", reason=" r ") == \
        {"strategy": "manual_intervention", "action": "skip", "step_id": "s", "reason": "r"}
    assert recover_body("manual_intervention", action="abort", step_id="s") == \
        {"strategy": "manual_intervention", "action": "abort"}
    with pytest.raises(ValueError, match="needs the step"):
        recover_body("manual_intervention", action="retry")
    with pytest.raises(ValueError, match="not both"):
        recover_body("partial_rollback", step_id="s", checkpoint="cp1")


def test_checkpoint_and_operator_rows() -> None:
    """Checkpoints are described by their events; waiting workflows list steps and errors."""
    rows = checkpoint_rows(["cp4", "cp9"], [_ev(4, "checkpoint_taken", 5, id="cp4",
                                                  label="manual", state="active", at=5.0)])
    assert (rows[0]["label"], rows[0]["seq"], rows[1]["label"]) == ("manual", 4, "")
    wf = _wf(steps=[("fetch", "robot", "failed")], awaiting_operator=["fetch"])
    wf["steps"][0]["error"] = "gripper"
    assert operator_rows([wf, _wf()]) == [{
        "id": "w1", "facility": "fa", "template": "pick",
        "state": "active \u203a executing \u203a step_execution", "steps": "fetch",
        "error": "fetch: gripper"}]


@pytest.mark.parametrize("name", ["workflows", "dependencies", "recovery"])
def test_page_scripts_have_no_stray_strings(name: str) -> None:
    """Streamlit's magic writes a bare string of a page script on the page: only the module
    docstring may be one."""
    path = Path(__file__).resolve().parent.parent / "dashboard" / "views" / f"{name}.py"
    body = ast.parse(path.read_text()).body[1:]
    bare = [n.lineno for n in body if isinstance(n, ast.Expr)
            and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)]
    assert not bare, f"{path.name}: bare strings at lines {bare}"


def test_coordination_names_who_a_step_waits_for() -> None:
    """A sync point's awaited agents, an auction's missing bids and a vote's voters
    replace the generic sentence; another workflow's are ignored."""
    notes = coordination_waits([{
        "sync_points": [{"workflow_id": "w1", "step_id": "meet", "awaited": ["p2"],
                         "arrived": ["p1"], "steps_to_finish": []},
                        {"workflow_id": "w2", "step_id": "meet", "awaited": ["x"]}],
        "auctions": [{"workflow_id": "w1", "step_id": "fetch", "phase": "bidding",
                      "round": 2, "awaited": ["r1", "r2"]}],
        "votes": []}], "w1")
    assert notes == {"meet": "p2 at the sync point (p1 arrived)",
                     "fetch": "bids from r1, r2 (auction round 2)"}
    running = [("fetch", "robot", "allocating"), ("check", "human", "done"),
               ("meet", "sync", "executing")]
    w = waiting_for(_wf(steps=running), PICK, notes)
    assert (w["fetch"], w["meet"]) == ("bids from r1, r2 (auction round 2)",
                                       "p2 at the sync point (p1 arrived)")
