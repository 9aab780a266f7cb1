"""Writes to a facility whose edge is down, through the real API: ``strong`` answers 503
(the command stays queued), ``eventual`` answers 202; both apply once the edge is back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_stack import Stack, create, run_stack, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def stack(tmp_path: Path, mosquitto_bin: str) -> Iterator[Stack]:
    """A stack of its own: this test stops one of its edges."""
    yield from run_stack(tmp_path, mosquitto_bin)


def test_writes_while_the_edge_is_down(stack: Stack) -> None:
    """Edge fb stopped: a strong create is 503 naming its command, an eventual one 202;
    both commands are applied after the edge restarts."""
    with stack.client("planner") as c:
        create(c, "fb")
        stack.stop("fb")
        wait_for(lambda: not next(f for f in c.get("/api/v1/facilities").json()
                                  if f["id"] == "fb")["online"], what="fb offline")
        strong = c.post("/api/v1/workflows", json={"facility": "fb", "template": "api_pick"})
        eventual = c.post("/api/v1/workflows", params={"consistency": "eventual"},
                          json={"facility": "fb", "template": "api_pick"})
        assert strong.status_code == 503, strong.text
        assert eventual.status_code == 202, eventual.text
        error = strong.json()["error"]
        assert error["code"] == "edge_unavailable" and "offline" in error["message"]
        cid = error["message"].split("command ")[1].split()[0]
        assert c.get(f"/api/v1/commands/{cid}").json()["state"] == "pending"
        stack.start("fb")
        both = (cid, eventual.json()["command_id"])
        wait_for(lambda: all(c.get(f"/api/v1/commands/{k}").json()["state"] == "applied"
                             for k in both), 30, what="both applied after the restart")
