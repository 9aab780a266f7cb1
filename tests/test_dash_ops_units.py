"""The plain functions behind the Agents, Coordination and Conflicts pages: the map's
tables (agents at their node, spread when several share one; two-way lanes drawn once),
agent and AGV rows, safety stops in force, conflict rows, ages, strategies and resolve
bodies, and the coordination tables. No stack: JSON in the hub's shapes in, rows out."""

from __future__ import annotations

import math
from typing import Any

import pytest

from dashboard._agents import agent_rows, stop_label, stops_in_force, vda_rows, workflow_rows
from dashboard._conflicts import (
    NO_CHOICE,
    STRATEGIES,
    ages,
    choices_for,
    conflict_rows,
    filter_status,
    how_it_ends,
    resolve_body,
)
from dashboard._coordination import (
    arrivals,
    auction_rows,
    bid_rows,
    sync_rows,
    team_rows,
    vote_rows,
)
from dashboard._map import agent_status, map_chart, map_frames

MAP = {"facility": "fa", "map_id": "m", "zones": [{"id": "cold", "mode": "exclusive"}],
       "nodes": [{"id": "a", "x": 0, "y": 0, "zones": [], "charger": True, "station": None},
                 {"id": "b", "x": 10, "y": 0, "zones": ["cold"], "charger": False,
                  "station": "pick"}],
       "edges": [{"source": "a", "target": "b", "length": 10},
                 {"source": "b", "target": "a", "length": 10}]}


def _agent(agent_id: str, **kw: Any) -> dict[str, Any]:
    return {"id": agent_id, "facility": "fa", "kind": "robot", "online": True,
            "status": "idle", "node": "a", "battery": 80.0, "mode": "automatic",
            "e_stop": False, "bids": True, **kw}


def test_agents_sharing_a_node_are_spread_around_it() -> None:
    """Two agents on node a are drawn apart, at the same distance from it; one alone on b
    is drawn on b; an agent on no known node is listed off the map."""
    f = map_frames(MAP, [_agent("r1"), _agent("r2"), _agent("r3", node="b"),
                         _agent("r4", node="nowhere")])
    at = {r["id"]: (r["x"], r["y"]) for r in f.agents.to_dict("records")}
    assert at["r1"] != at["r2"]
    assert math.hypot(*at["r1"]) == pytest.approx(math.hypot(*at["r2"]))
    assert at["r3"] == (10.0, 0.0) and f.off_map == ["r4"]


def test_a_two_way_lane_is_one_line_and_nodes_say_what_they_are() -> None:
    """a<->b is one line; a is a charger, b a pick station in the cold zone."""
    f = map_frames(MAP, [])
    assert len(f.lanes) == 1
    nodes = {r["id"]: r for r in f.nodes.to_dict("records")}
    assert nodes["a"]["what"] == "charger" and nodes["b"]["what"] == "pick"
    assert nodes["b"]["zones"] == "cold"


def test_the_chart_has_the_agents_in_their_colours() -> None:
    """The chart's spec carries every agent and the status colour scale."""
    spec = map_chart(map_frames(MAP, [_agent("r1", status="busy")])).to_dict()
    text = str(spec)
    assert "r1" in text and "#1f77b4" in text


def test_status_offline_and_e_stop_come_first() -> None:
    """Offline beats everything; an engaged e-stop beats the reported status."""
    assert agent_status(_agent("x", online=False, e_stop=True)) == "offline"
    assert agent_status(_agent("x", e_stop=True, status="busy")) == "e-stop"
    assert agent_status(_agent("x", status="charging")) == "charging"


def test_agent_rows_show_battery_work_and_lending() -> None:
    """A row per agent, by id: battery in percent, its workflow/step, where it is lent."""
    rows = agent_rows([_agent("r2", battery=None, lent_to="fb"),
                       _agent("r1", workflow_id="w1", step_id="s1")])
    assert [r["agent"] for r in rows] == ["r1", "r2"]
    assert rows[0]["battery"] == "80 %" and rows[0]["work"] == "w1/s1"
    assert rows[1]["battery"] == "—" and rows[1]["lent to"] == "fb"


def test_vda_rows_list_only_agents_the_edge_bids_for_with_their_conflicts() -> None:
    """Only bids=false agents; their unresolved safety conflicts are named."""
    conflicts = [{"rule": "e_stop", "status": "open", "participants": ["agv1"]},
                 {"rule": "e_stop", "status": "resolved", "participants": ["agv1"]},
                 {"rule": "deadline_at_risk", "status": "open", "participants": ["agv1"]}]
    rows = vda_rows([_agent("agv1", bids=False, e_stop=True, mode="manual"), _agent("r1")],
                    conflicts)
    assert [r["agv"] for r in rows] == ["agv1"]
    assert rows[0]["e-stop"] == "ENGAGED" and rows[0]["mode"] == "manual"
    assert rows[0]["safety conflicts"] == "e_stop (open)"


def test_workflow_rows_name_the_steps_the_agent_holds() -> None:
    """An agent's workflow lists the steps it holds now."""
    wf = {"id": "w1", "facility": "fa", "template": "t", "state": "active.running",
          "steps": [{"id": "s1", "state": "executing", "agent": "r1"},
                    {"id": "s2", "state": "pending", "agent": None}]}
    assert workflow_rows([wf], "r1")[0]["its steps now"] == "s1 (executing)"
    assert workflow_rows([wf], "r9")[0]["its steps now"] == "—"


def test_stops_in_force_are_the_facilitys_unreleased_ones() -> None:
    """Only fa's unresolved facility_stop conflicts; the label names the scope."""
    stops = [{"facility": "fa", "rule": "facility_stop", "status": "open", "resource": "cold",
              "participants": ["r1"], "detail": "spill"},
             {"facility": "fa", "rule": "facility_stop", "status": "resolved",
              "resource": None, "participants": []},
             {"facility": "fb", "rule": "facility_stop", "status": "open", "resource": None,
              "participants": []}]
    found = stops_in_force(stops, "fa")
    assert found == [stops[0]]
    assert stop_label(found[0]) == "🛑 zone cold: r1 — spill"


def test_ages_read_as_people_say_them() -> None:
    """Seconds, minutes, hours and minutes, days."""
    assert [ages(s) for s in (5, 125, 3 * 3600 + 300, 3 * 86400)] == \
        ["5 s", "2 min", "3 h 5 min", "3 d"]


def test_conflict_rows_newest_first_with_age() -> None:
    """Rows are newest first, with participants joined and an age."""
    rows = conflict_rows([{"id": "k1", "detected_at": 100.0, "participants": ["a", "b"]},
                          {"id": "k2", "detected_at": 150.0}], now=160.0)
    assert [r["id"] for r in rows] == ["k2", "k1"]
    assert rows[1]["age"] == "1 min" and rows[1]["participants"] == "a, b"


def test_status_filter() -> None:
    """unresolved = open + escalated; one status; all."""
    cs = [{"status": s} for s in ("open", "escalated", "resolved")]
    assert len(filter_status(cs, "unresolved")) == 2
    assert filter_status(cs, "escalated") == [cs[1]] and len(filter_status(cs, "all")) == 3


def test_choices_per_kind_of_conflict() -> None:
    """Contention: the four strategies or none; a hub double-booking: keep one holder's
    facility; anything else: resolve plainly."""
    assert choices_for({"id": "k1", "rule": "agent_double_booked"}) == [*STRATEGIES, NO_CHOICE]
    assert choices_for({"id": "x-1", "rule": "shared_agent",
                        "participants": ["fb/w2/s", "fa/w1/s"]}) == ["keep:fa", "keep:fb"]
    assert choices_for({"id": "k2", "rule": "deadline_at_risk"}) == [NO_CHOICE]


def test_resolve_bodies() -> None:
    """A strategy goes as ``choice``; none sends the note only; keep:<f> is the hub's."""
    c = {"id": "k1", "facility": "fa"}
    assert resolve_body(c, "negotiation", " why ") == {
        "facility": "fa", "resolution": "why", "choice": "negotiation"}
    assert resolve_body(c, NO_CHOICE, "") == {"facility": "fa",
                                              "resolution": "resolved by operator"}
    assert resolve_body({"id": "x-1", "facility": "*"}, "keep:fb", "") == {
        "resolution": "keep:fb"}


def test_what_is_not_settled_on_this_page() -> None:
    """A stop ends by release, a safety condition by itself, a resolved one not again."""
    assert "release" in str(how_it_ends({"rule": "facility_stop", "status": "open"}))
    assert "by itself" in str(how_it_ends({"rule": "e_stop", "status": "open"}))
    assert how_it_ends({"rule": "e_stop", "status": "resolved"}) == "it is resolved already"
    assert how_it_ends({"rule": "agent_double_booked", "status": "escalated"}) is None


VIEWS = [{"facility": "fc", "seq": 9,
          "auctions": [{"id": "c1", "workflow_id": "w1", "step_id": "s", "round": 1,
                        "phase": "bidding", "invited": ["a", "b", "c"],
                        "bids": [{"agent": "b", "cost": 9.0, "eta_s": 1.0, "proxy": True},
                                 {"agent": "a", "cost": 3.0, "eta_s": 2.0, "proxy": False}],
                        "awaited": ["c"], "winner": None, "deadline": 110.0, "due": 110.0}],
          "sync_points": [{"workflow_id": "w2", "step_id": "meet", "state": "executing",
                           "participants": ["x", "y"], "expected": ["p", "q"],
                           "arrived": ["p"], "awaited": ["q"], "steps_to_finish": []}],
          "teams": [{"workflow_id": "w3", "step_id": "carry", "protocol": "leader_follower",
                     "state": "executing", "leader": "r1",
                     "members": {"front": "r1", "back": "r2"}, "followers": ["r2"]}],
          "votes": [{"workflow_id": "w4", "step_id": "go", "id": "v1", "voters": ["h1", "h2"],
                     "quorum": 2, "votes": {"h1": "then"}, "awaited": ["h2"],
                     "deadline": 130.0, "default": "else", "result": None, "reason": None}]}]


def test_auction_and_bid_rows() -> None:
    """An auction row with its bid count and what is awaited; bids cheapest first, the
    edge's proxy bid said so."""
    [row] = auction_rows(VIEWS, now=100.0)
    assert row["step"] == "w1/s" and row["bids"] == 2 and row["awaited"] == "c"
    assert row["next"] == "in 10 s"
    bids = bid_rows(VIEWS)
    assert [b["agent"] for b in bids] == ["a", "b"] and bids[1]["by"] == "the edge (proxy)"


def test_sync_team_and_vote_rows_and_arrivals() -> None:
    """Who arrived and who is awaited; leader and followers; the tally; the arrivals a
    supervisor may report."""
    assert sync_rows(VIEWS)[0]["awaited"] == "q"
    assert arrivals(VIEWS) == [("w2", "meet", "q")]
    team = team_rows(VIEWS)[0]
    assert (team["leader"], team["followers"]) == ("r1", "r2")
    vote = vote_rows(VIEWS, now=100.0)[0]
    assert (vote["then"], vote["else"], vote["result"], vote["closes"]) == \
        (1, 0, "open", "in 30 s")
