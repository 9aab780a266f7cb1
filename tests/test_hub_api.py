"""The hub's REST API against a real hub (``fleetflow hub``) with real edges
(``fleetflow edge``) on a real Mosquitto: every endpoint refuses a request without a token
(401) and, where a role is needed above viewer, one with too low a role (403); refuses bad
input (422 naming the field) without sending anything; and serves its reads. The writes'
happy paths are in ``test_hub_api_writes.py``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from hub_stack import ROLES, Stack, create, run_stack, wait_for

pytestmark = pytest.mark.slow

# (method, path, least role, a valid body); {wid} is a live workflow of facility fa.
ENDPOINTS: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v1/workflows", "viewer", None),
    ("POST", "/api/v1/workflows", "planner", {"facility": "fa", "template": "api_pick"}),
    ("POST", "/api/v1/workflows/batch", "planner",
     {"action": "pause", "filter": {"facility": "fb"}, "dry_run": True}),
    ("GET", "/api/v1/workflows/{wid}", "viewer", None),
    ("PUT", "/api/v1/workflows/{wid}", "planner", {"priority": 3}),
    ("DELETE", "/api/v1/workflows/{wid}", "planner", None),
    ("POST", "/api/v1/workflows/{wid}/pause", "supervisor", {}),
    ("POST", "/api/v1/workflows/{wid}/resume", "supervisor", {}),
    ("GET", "/api/v1/workflows/{wid}/dependencies", "viewer", None),
    ("POST", "/api/v1/workflows/{wid}/dependencies", "planner", {"source": "{wid}"}),
    ("POST", "/api/v1/workflows/{wid}/coordination", "planner", {"protocol": "direct"}),
    ("POST", "/api/v1/workflows/{wid}/checkpoint", "planner", {}),
    ("GET", "/api/v1/workflows/{wid}/checkpoints", "viewer", None),
    ("POST", "/api/v1/workflows/{wid}/recover", "planner", {"strategy": "automatic_retry"}),
    ("GET", "/api/v1/workflows/{wid}/events", "viewer", None),
    ("POST", "/api/v1/workflows/{wid}/sync/meet/agent/fitter1", "supervisor", {}),
    ("GET", "/api/v1/conflicts", "viewer", None),
    ("POST", "/api/v1/conflicts/k1/resolve", "supervisor", {}),
    ("GET", "/api/v1/performance/cache", "viewer", None),
    ("GET", "/api/v1/performance/system", "viewer", None),
    ("POST", "/api/v1/state/sync", "supervisor", {}),
    ("GET", "/api/v1/agents", "viewer", None),
    ("GET", "/api/v1/agents/fitter1/workflows", "viewer", None),
    ("GET", "/api/v1/facilities", "viewer", None),
    ("POST", "/api/v1/facilities/fa/stop", "supervisor", {}),
    ("POST", "/api/v1/facilities/fa/release", "supervisor", {}),
    ("GET", "/api/v1/templates", "viewer", None),
    ("GET", "/api/v1/facilities/fa/map", "viewer", None),
    ("GET", "/api/v1/facilities/fa/vda", "viewer", None),
    ("GET", "/api/v1/coordination", "viewer", None),
    ("GET", "/api/v1/whoami", "viewer", None),
    ("GET", "/api/v1/commands/hub-0", "viewer", None),
    ("GET", "/api/v1/events", "viewer", None),
    # lending (test_hub_bookings.py has the happy paths)
    ("POST", "/api/v1/agents/fitter1/lend", "supervisor",
     {"from_facility": "fc", "to_facility": "fa"}),
    ("POST", "/api/v1/agents/fitter1/return", "supervisor", {}),
    ("POST", "/api/v1/resources/dock1/lend", "supervisor",
     {"from_facility": "fa", "to_facility": "fb"}),
    ("POST", "/api/v1/resources/dock1/return", "supervisor", {}),
    ("GET", "/api/v1/loans", "viewer", None),
]
_IDS = [f"{m} {p}" for m, p, _, _ in ENDPOINTS]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[Stack]:
    """One stack for the module's tests (each makes its own workflows)."""
    yield from run_stack(tmp_path_factory.mktemp("hubapi"), mosquitto_bin)


@pytest.fixture(scope="module")
def wid(stack: Stack) -> str:
    """A live workflow in facility fa that the refused requests must leave alone."""
    with stack.client("planner") as c:
        return create(c, "fa")


def _fill(value: Any, wid: str) -> Any:
    if isinstance(value, str):
        return value.replace("{wid}", wid)
    if isinstance(value, dict):
        return {k: _fill(v, wid) for k, v in value.items()}
    return value


def _send(stack: Stack, role: str | None, method: str, path: str,
          body: dict[str, Any] | None, wid: str, **headers: str) -> Any:
    with stack.client(role, **headers) as c:
        return c.request(method, _fill(path, wid), json=_fill(body, wid))


def _events(stack: Stack, wid: str) -> list[str]:
    with stack.client("viewer") as c:
        return [e["kind"] for e in c.get(f"/api/v1/workflows/{wid}/events",
                                         params={"limit": 500}).json()["items"]]


@pytest.mark.parametrize(("method", "path", "role", "body"), ENDPOINTS, ids=_IDS)
def test_no_token_is_401(stack: Stack, wid: str, method: str, path: str, role: str,
                         body: dict[str, Any] | None) -> None:
    """Every /api/v1 endpoint refuses a request without a bearer token (401, JSON error)."""
    r = _send(stack, None, method, path, body, wid)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthorized"
    assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path", "role", "body"), ENDPOINTS, ids=_IDS)
def test_bad_token_is_401(stack: Stack, wid: str, method: str, path: str, role: str,
                          body: dict[str, Any] | None) -> None:
    """A token the hub never issued is refused like none (401)."""
    r = _send(stack, None, method, path, body, wid,
              Authorization="Bearer ff_000000000000_" + "A" * 43)
    assert r.status_code == 401, r.text


@pytest.mark.parametrize(("method", "path", "role", "body"),
                         [e for e in ENDPOINTS if e[2] != "viewer"],
                         ids=[i for i, e in zip(_IDS, ENDPOINTS, strict=True) if e[2] != "viewer"])
def test_role_too_low_is_403_and_changes_nothing(
        stack: Stack, wid: str, method: str, path: str, role: str,
        body: dict[str, Any] | None) -> None:
    """The role just below the least one an endpoint needs gets 403, and the workflow's
    audit trail does not move."""
    before = _events(stack, wid)
    lower = ROLES[ROLES.index(role) - 1]
    r = _send(stack, lower, method, path, body, wid)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"
    assert _events(stack, wid) == before


# (method, path, body or query, the field path the 422 must name)
BAD = [
    ("POST", "/api/v1/workflows", {"facility": "fa", "template": "api_pick", "priority": 5000},
     "body.priority"),
    ("POST", "/api/v1/workflows", {"facility": "a/b", "template": "api_pick"}, "body.facility"),
    ("POST", "/api/v1/workflows", {"template": "api_pick"}, "body.facility"),
    ("POST", "/api/v1/workflows", {"facility": "fa", "template": "api_pick", "colour": 1},
     "body.colour"),
    ("POST", "/api/v1/workflows/batch", {"action": "explode", "filter": {"facility": "fa"}},
     "body.action"),
    ("POST", "/api/v1/workflows/batch", {"action": "pause", "filter": {}}, "body.filter"),
    ("PUT", "/api/v1/workflows/{wid}", {"priority": "high"}, "body.priority"),
    ("PUT", "/api/v1/workflows/{wid}", {}, "body"),
    ("PUT", "/api/v1/workflows/{wid}", {"deadline": -1}, "body.deadline"),
    ("POST", "/api/v1/workflows/{wid}/pause", {"reason": "x" * 2000}, "body.reason"),
    ("POST", "/api/v1/workflows/{wid}/dependencies", {"source": "{wid}", "step": "fetch"},
     "body"),
    ("POST", "/api/v1/workflows/{wid}/coordination", {"protocol": "anarchy"}, "body.protocol"),
    ("POST", "/api/v1/workflows/{wid}/checkpoint", {"label": "a b"}, "body.label"),
    ("POST", "/api/v1/workflows/{wid}/recover", {"strategy": "pray"}, "body.strategy"),
    ("POST", "/api/v1/workflows/{wid}/recover", {"strategy": "manual_intervention"}, "body"),
    ("POST", "/api/v1/workflows/{wid}/recover",
     {"strategy": "automatic_retry", "checkpoint": "cp1"}, "body"),
    ("POST", "/api/v1/conflicts/k1/resolve", {"choice": "coin_toss"}, "body.choice"),
    ("POST", "/api/v1/facilities/fa/stop", {"zone": ""}, "body.zone"),
    ("POST", "/api/v1/state/sync", {"facility": 7}, "body.facility"),
    ("GET", "/api/v1/workflows?limit=0", None, "query.limit"),
    ("GET", "/api/v1/workflows?since=-5", None, "query.since"),
    ("GET", "/api/v1/workflows/{wid}?consistency=psychic", None, "query.consistency"),
    ("GET", "/api/v1/workflows/{wid}/events?limit=100000", None, "query.limit"),
    ("GET", "/api/v1/agents?facility=a%2Bb", None, "query.facility"),
    ("GET", "/api/v1/events?limit=0", None, "query.limit"),
    ("DELETE", "/api/v1/workflows/{wid}?consistency=psychic", None, "query.consistency"),
    ("POST", "/api/v1/workflows/{wid}/resume", {"reason": "x" * 2000}, "body.reason"),
    ("GET", "/api/v1/workflows/a%2Bb/dependencies", None, "path.workflow_id"),
    ("GET", "/api/v1/workflows/a%2Bb/checkpoints", None, "path.workflow_id"),
    ("POST", "/api/v1/workflows/{wid}/sync/me%2Bet/agent/fitter1", {}, "path.sync_point"),
    ("GET", "/api/v1/agents/a%2Bb/workflows", None, "path.agent_id"),
    ("POST", "/api/v1/facilities/a%2Bb/release", {}, "path.facility_id"),
    ("GET", "/api/v1/facilities/a%2Bb/map", None, "path.facility_id"),
    ("GET", "/api/v1/facilities/a%2Bb/vda", None, "path.facility_id"),
    ("GET", "/api/v1/coordination?facility=a%2Bb", None, "query.facility"),
    ("GET", "/api/v1/conflicts?limit=0", None, "query.limit"),
    ("GET", "/api/v1/commands/a%2Bb", None, "path.command_id"),
    ("POST", "/api/v1/agents/fitter1/lend", {"from_facility": "fc"}, "body.to_facility"),
    ("POST", "/api/v1/agents/a%2Bb/return", {}, "path.agent_id"),
    ("POST", "/api/v1/resources/dock1/lend", {"from_facility": "fa", "to_facility": "f+b"},
     "body.to_facility"),
    ("POST", "/api/v1/resources/dock1/return", {"from_facility": "a+b"},
     "body.from_facility"),
    ("GET", "/api/v1/workflows?label=team", None, "query.label"),
    ("POST", "/api/v1/workflows", {"facility": "fa", "template": "api_pick",
                                   "labels": {"a=b": "x"}}, "body.labels"),
    ("PUT", "/api/v1/workflows/{wid}", {"labels": {"team": "x=y"}}, "body.labels"),
    ("POST", "/api/v1/workflows/batch",
     {"action": "pause", "filter": {"label": "nokey"}}, "body.filter.label"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), BAD,
                         ids=[f"{m} {p} {f}" for m, p, _, f in BAD])
def test_bad_input_is_422_naming_the_field(stack: Stack, wid: str, method: str, path: str,
                                           body: dict[str, Any] | None, field: str) -> None:
    """Bad input gets 422 with the field's path, and the workflow's trail does not move."""
    before = _events(stack, wid)
    r = _send(stack, "admin", method, path, body, wid)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith(field), error
    assert _events(stack, wid) == before


def test_health_and_metrics_need_no_token(stack: Stack) -> None:
    """/health tells the facilities; /metrics serves the API's Prometheus counters."""
    with stack.client(None) as c:
        health = c.get("/health").json()
        metrics = c.get("/metrics")
    assert (health["status"], health["facilities"], health["online"]) == ("ok", 3, 3)
    assert set(health["stale"]) <= {"fa", "fb", "fc"}
    assert 'fleetflow_hub_api_requests_total{method="GET",route="/health"' in metrics.text


def test_metrics_serve_the_hubs_own_figures(stack: Stack) -> None:
    """/metrics also serves what /performance/system reports: each facility's lag, online
    and stale flags and replica health, events applied, commands, the broker link."""
    with stack.client("viewer") as c:
        system = c.get("/api/v1/performance/system").json()
    with stack.client(None) as c:
        text = c.get("/metrics").text
    for f in ("fa", "fb", "fc"):
        assert f'fleetflow_hub_facility_online{{facility="{f}"}} 1.0' in text, text
        assert f'fleetflow_hub_replica_broken{{facility="{f}"}} 0.0' in text
        assert f'fleetflow_hub_facility_lag_events{{facility="{f}"}}' in text
    sample = re.search(r"^fleetflow_hub_events_applied_total (\S+)$", text, re.MULTILINE)
    assert sample is not None, text
    applied = float(sample.group(1))
    assert applied >= system["events_applied"]  # read after it: a counter only grows
    assert 'fleetflow_hub_commands_total{outcome="sent"}' in text
    assert "fleetflow_hub_link_connected 1.0" in text


def test_unknown_workflow_is_404_json(stack: Stack) -> None:
    """A workflow no facility has: 404 with the JSON error shape."""
    with stack.client("viewer") as c:
        r = c.get("/api/v1/workflows/no-such-wf")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found" and "no-such-wf" in r.json()["error"][
        "message"]


def test_list_filters_and_pages(stack: Stack) -> None:
    """A filtered list pages by cursor: pages do not overlap, together they hold the whole
    match, and ``count`` says how many that is."""
    with stack.client("planner") as c:
        made = {create(c, "fb", priority=i) for i in range(3)}
        pages = [c.get("/api/v1/workflows", params={"facility": "fb", "limit": 2}).json()]
        while pages[-1]["next_cursor"]:
            pages.append(c.get("/api/v1/workflows", params={
                "facility": "fb", "limit": 2, "cursor": pages[-1]["next_cursor"]}).json())
    ids = [w["id"] for p in pages for w in p["items"]]
    assert len(pages) >= 2 and all(len(p["items"]) <= 2 for p in pages)
    assert len(ids) == len(set(ids)) == pages[0]["count"] and made <= set(ids)
    assert {w["facility"] for p in pages for w in p["items"]} == {"fb"}


def test_list_combines_filters(stack: Stack) -> None:
    """Filters combine: facility fb has api_pick workflows but no api_meet one."""
    with stack.client("planner") as c:
        create(c, "fb")
        picks = c.get("/api/v1/workflows", params={"facility": "fb", "template": "api_pick"})
        meets = c.get("/api/v1/workflows", params={"facility": "fb", "template": "api_meet"})
    assert picks.json()["count"] >= 1
    assert meets.json() == {"items": [], "count": 0, "next_cursor": None}


def test_facilities_agents_templates(stack: Stack) -> None:
    """The fleet reads: the facilities online, fc's simulated fitters, the templates."""
    with stack.client("viewer") as c:
        facilities = {f["id"]: f for f in c.get("/api/v1/facilities").json()}
        agents = wait_for(lambda: (a := c.get("/api/v1/agents", params={"facility": "fc"})
                                   .json())["count"] >= 2 and a, what="fc's agents")
        templates = c.get("/api/v1/templates").json()
    assert set(facilities) == {"fa", "fb", "fc"} and all(f["online"] for f in facilities.values())
    assert {a["id"] for a in agents["items"]} == {"fitter1", "fitter2"}
    assert {"api_pick", "api_meet"} <= {t["name"] for t in templates}


def test_whoami_names_each_tokens_role(stack: Stack) -> None:
    """GET /whoami answers each token's name and role, for every role."""
    for role in ROLES:
        with stack.client(role) as c:
            r = c.get("/api/v1/whoami")
        assert r.status_code == 200, r.text
        assert r.json() == {"name": f"{role}-user", "role": role}


def test_performance_endpoints(stack: Stack) -> None:
    """Cache tiers and system figures, with the API's own request figures."""
    with stack.client("viewer") as c:
        c.get("/api/v1/workflows")
        cache = c.get("/api/v1/performance/cache").json()
        system = c.get("/api/v1/performance/system").json()
    assert "tiers" in cache
    assert system["api"]["requests"] >= 1 and set(system["facilities"]) == {"fa", "fb", "fc"}


def test_bounded_staleness_read(stack: Stack, wid: str) -> None:
    """A bounded_staleness read of a live, current facility is served (the header works
    like the query)."""
    with stack.client("viewer", **{"X-Consistency": "bounded_staleness"}) as c:
        r = c.get(f"/api/v1/workflows/{wid}", params={"max_staleness_s": 60})
    assert r.status_code == 200 and r.json()["id"] == wid


def _operations(stack: Stack) -> list[tuple[str, str, bool]]:
    """(method, path template, takes input) of every /api/v1 operation the live
    OpenAPI document declares."""
    with stack.client(None) as c:
        spec = c.get("/openapi.json").json()
    return [(method.upper(), path, bool(op.get("parameters") or op.get("requestBody")))
            for path, ops in spec["paths"].items() if path.startswith("/api/v1/")
            for method, op in ops.items()]


def _covers(template: str, method: str, table: list[tuple[str, str]]) -> bool:
    parts = re.split(r"\{[^/]+?\}", template)
    pattern = re.compile("[^/]+".join(map(re.escape, parts)) + "$")
    return any(m == method and pattern.match(p.split("?")[0].replace("{wid}", "w"))
               for m, p in table)


def test_every_endpoint_is_in_the_tables(stack: Stack) -> None:
    """Every /api/v1 operation of the live OpenAPI document is checked above for 401 and
    (above viewer) 403; every one that takes input also for 422 — a new route cannot
    slip past these tests."""
    operations = _operations(stack)
    assert len(operations) >= len(ENDPOINTS) - 1
    checked = [(m, p) for m, p, _, _ in ENDPOINTS]
    validated = [(m, p) for m, p, _, _ in BAD]
    missing = [f"{m} {t}" for m, t, _ in operations if not _covers(t, m, checked)]
    unvalidated = [f"{m} {t}" for m, t, takes in operations
                   if takes and not _covers(t, m, validated)]
    assert missing == [] and unvalidated == []


def test_labels_filter_lists_and_follow_updates(stack: Stack) -> None:
    """Labels given at creation filter lists (alone or with a facility); an update moves a
    workflow from one label's list to another's."""
    with stack.client("planner") as c:
        north = {create(c, "fa", labels={"team": "north"}) for _ in range(2)}
        south = create(c, "fb", labels={"team": "south", "rush": "yes"})

        def ids(**params: str) -> set[str]:
            page = c.get("/api/v1/workflows", params={**params, "limit": 500}).json()
            assert page["count"] == len(page["items"])
            return {w["id"] for w in page["items"]}

        assert ids(label="team=north") == north
        assert ids(label="team=north", facility="fb") == set()
        assert ids(label="rush=yes", facility="fb") == {south}
        moved = next(iter(north))
        r = c.put(f"/api/v1/workflows/{moved}", json={"labels": {"team": "south"}})
        assert r.status_code == 200, r.text
        assert c.get(f"/api/v1/workflows/{moved}").json()["labels"] == {"team": "south"}
        assert wait_for(lambda: ids(label="team=south") == {south, moved},
                        what="the moved workflow in team=south")
        assert ids(label="team=north") == north - {moved}
