"""A workflow with more than 20,000 events on the Workflows page (``dash_rig``'s real
stack): five simulated robots in ``fa`` report 4,000 progress messages each on the five
parallel steps of ``api_chat``, the edge logs every one, the hub ingests them; the page
still opens the workflow in a few seconds — the audit trail is one page per request and
the timeline reads the newest 2,000 events — and pages through the trail."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from dash_rig import Stack, page, serve, shown
from hub_stack import TEMPLATES, create, wait_for
from streamlit.testing.v1 import AppTest

from agents_sim.native import AgentSpec, FleetRunner

pytestmark = pytest.mark.slow

STEPS = 10
PROGRESS = 2100
CHAT = "name: api_chat\nsteps:\n" + "".join(
    f"  - id: s{i}\n    kind: robot\n    capabilities: [chat]\n    location: p1\n"
    "    estimated_duration_s: 4\n" for i in range(STEPS))


@pytest.fixture(scope="module", autouse=True)
def stack(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[Stack]:
    """The stack with ``api_chat`` and ten chatty robots in ``fa`` (a long liveness: a
    loaded machine must not make the edge take a step back from one)."""
    for s in serve(tmp_path_factory, mosquitto_bin,
                   templates_text={**TEMPLATES, "api_chat.yaml": CHAT}):
        fleet = FleetRunner("fa", [AgentSpec(f"chatty{i}", "robot", ("chat",), node="p1",
                                             state_period_s=1.0, liveness_s=120.0,
                                             speed=0.25, progress_steps=PROGRESS)
                                   for i in range(STEPS)], port=s.mqtt_port)
        fleet.start()
        try:
            yield s
        finally:
            fleet.stop()


def _caption(at: AppTest) -> tuple[int, int, int]:
    found = re.search(r"Events (\d+) to (\d+) of (\d+)", shown(at))
    assert found, shown(at)
    lo, hi, total = (int(g) for g in found.groups())
    return lo, hi, total


@pytest.mark.timeout(900)
def test_a_workflow_with_20000_events_opens_fast_and_pages(stack: Stack) -> None:
    """Over 20,000 events: the detail view opens within seconds showing the newest page of
    the trail as the API counts it, and the next older page follows. (The trail may still
    grow meanwhile: each page is checked against the count it was read with.)"""
    with stack.client("planner") as c:
        wid = create(c, "fa", template="api_chat")

        def count() -> int:
            got = c.get(f"/api/v1/workflows/{wid}/events", params={"limit": 1}).json()
            return int(got["count"])

        wait_for(lambda: count() > STEPS * PROGRESS, 600,
                 lambda: f"over {STEPS * PROGRESS} events ({count()} so far)")
    at = page("workflows")
    at.query_params["id"] = wid
    t0 = time.perf_counter()
    at.run()
    took = time.perf_counter() - t0
    assert not at.exception
    lo, hi, total = _caption(at)
    assert (lo, hi) == (total - 49, total) and total > 20_000
    assert "(newest first)" in shown(at)
    assert took < 10, f"the page took {took:.1f} s"
    at.button(key="audit_older").click().run()
    lo, hi, total = _caption(at)
    assert (lo, hi) == (total - 99, total - 50)
