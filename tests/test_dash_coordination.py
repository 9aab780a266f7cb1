"""The Coordination page against a real stack (``dash_rig``) with ``ops_rig``'s agents and
templates in ``fc``: a running auction with its bid and the invitee still awaited, a sync
point with who arrived and who is awaited, a leader/follower team and an open vote — as the
API reports them; a supervisor reports a person's arrival and the barrier is released on the
next run; a viewer sees the control disabled; a hub that is down is a banner."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import free_port
from dash_rig import Stack, errors, page, serve, shown
from hub_stack import create, wait_for
from ops_rig import OPS_EDGE_FLAGS, OPS_TEMPLATES, ops_fleet

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def stack(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[Stack]:
    """The stack with ``ops_rig``'s templates, and its agents in ``fc``."""
    for s in serve(tmp_path_factory, mosquitto_bin, templates_text=OPS_TEMPLATES,
                   edge_flags=OPS_EDGE_FLAGS):
        with ops_fleet(s.mqtt_port):
            yield s


def _under_way(stack: Stack, part: str, template: str, ready: Any = bool,
               facility: str = "fc") -> tuple[str, dict[str, Any]]:
    """A new ``template`` workflow in ``facility`` and its entry in the API's ``part``,
    once ``ready`` holds for it."""
    with stack.client("planner") as c:
        wid = create(c, facility, template=template)

        def entry() -> dict[str, Any] | None:
            [view] = c.get("/api/v1/coordination", params={"facility": facility}).json()
            found = next((x for x in view[part] if x["workflow_id"] == wid), None)
            return found if found is not None and ready(found) else None
        return wid, wait_for(entry, 30, f"{template} under way")


def test_auction_shows_its_bid_and_who_is_awaited(stack: Stack) -> None:
    """The auction's phase, its bidder's cost and the silent invitee, as the API says."""
    wid, auction = _under_way(stack, "auctions", "ops_bid", lambda a: a["bids"])
    at = page("coordination")
    assert not at.exception
    text = shown(at)
    assert f"{wid}/look" in text and auction["phase"] in text
    bid = auction["bids"][0]
    assert bid["agent"] in text and str(bid["cost"]) in text
    assert auction["awaited"] == ["mute1"] and "mute1" in text


def test_sync_point_then_a_reported_arrival_releases_it(stack: Stack) -> None:
    """The walker arrived, nophone1 is awaited; the supervisor reports it; the next run no
    longer lists the sync point and the workflow completed."""
    # Both assigned: until nophone1 has its step, the barrier awaits nobody yet.
    wid, point = _under_way(stack, "sync_points", "ops_sync",
                            lambda p: p["arrived"] and p["awaited"])
    at = page("coordination")
    assert f"{wid}/meet" in shown(at) and "walker1" in shown(at)
    at.selectbox(key="arrival").set_value(f"nophone1 at {wid}/meet")
    at.button(key="arrive").click().run()
    assert not errors(at), errors(at)
    assert any("released" in s.value for s in at.success)
    at.run()
    assert f"{wid}/meet" not in shown(at)
    with stack.client("viewer") as c:
        assert c.get(f"/api/v1/workflows/{wid}").json()["state"] == "completed"
    assert point["awaited"] == ["nophone1"]


def test_team_shows_leader_and_follower(stack: Stack) -> None:
    """The carriers' team: the leader and the follower the API names."""
    wid, team = _under_way(stack, "teams", "ops_team", facility="fb")
    text = shown(page("coordination"))
    assert f"{wid}/carry" in text and "leader_follower" in text
    assert team["leader"] in text and team["followers"][0] in text


def test_open_vote_shows_voters_and_tally(stack: Stack) -> None:
    """The open vote: its voter awaited, nothing cast, still open."""
    wid, vote = _under_way(stack, "votes", "ops_vote")
    text = shown(page("coordination"))
    assert f"{wid}/go" in text and vote["voters"][0] in text and "open" in text


def test_viewer_sees_the_arrival_control_disabled(stack: Stack) -> None:
    """A viewer: the same sync point; the report button disabled."""
    wid, _ = _under_way(stack, "sync_points", "ops_sync", lambda p: p["arrived"])
    at = page("coordination", "viewer")
    assert f"{wid}/meet" in shown(at)
    assert at.button(key="arrive").disabled and "Read only" in shown(at)


def test_a_hub_that_is_down_is_a_banner() -> None:
    """Nothing listens on the API's address: a warning that says so, no traceback."""
    port = free_port()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
    at = page("coordination", url=f"http://127.0.0.1:{port}")
    assert not at.exception
    assert any("not reachable" in e for e in errors(at)), errors(at)


def test_the_page_comes_back_with_the_hub(stack: Stack) -> None:
    """The hub stops: a banner; it starts again: the next run shows the page, no banner."""
    stack.stop("hub")
    try:
        at = page("coordination")
        assert any("not reachable" in e for e in errors(at)), errors(at)
    finally:
        stack.start("hub")
    wait_for(lambda: httpx.get(f"{stack.url}/health", timeout=2).json()["online"] == 3, 60,
             "the hub back with every edge")
    at.run()
    assert not errors(at) and not at.exception, errors(at)
    assert "Sync points" in shown(at)
