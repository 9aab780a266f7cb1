"""The dashboard's Performance page (AppTest) against a real stack: the hub's cache tiers
against their targets, its system figures and the event rates per facility as the API
reports them, the same to a viewer, readable errors; and the page's plain functions."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import free_port
from dash_rig import Stack, errors, page, serve, shown, table
from hub_stack import create

from dashboard._performance import facility_rates, size, system_rows, tier_rows, verdict

pytestmark = pytest.mark.slow
BAD_TOKEN = "ff_000000000000_" + "A" * 43


@pytest.fixture(scope="module", autouse=True)
def stack(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[Stack]:
    yield from serve(tmp_path_factory, mosquitto_bin)


def _get(stack: Stack, path: str) -> Any:
    with stack.client("viewer") as c:
        r = c.get(f"/api/v1{path}")
    assert r.status_code == 200, r.text
    return r.json()


def test_cache_tiers_show_against_their_targets(stack: Stack) -> None:
    """Three tiers with the targets 1/10/100 ms; hits and misses at least what the API
    reported just before (they only grow), and the p99 verdict the hub's own."""
    with stack.client("planner") as c:
        wid = create(c, "fa")
        for _ in range(3):
            assert c.get(f"/api/v1/workflows/{wid}").status_code == 200
    before = _get(stack, "/performance/cache")["tiers"]
    at = page("performance")
    assert not at.exception, at.exception
    tiers = table(at, "tier").set_index("tier")
    assert list(tiers.index) == ["memory", "warm", "storage"]
    assert list(tiers["target p99 ms"]) == [1, 10, 100]
    for name in ("memory", "warm", "storage"):
        assert tiers.loc[name, "hits"] >= before[name]["hits"]
        assert tiers.loc[name, "misses"] >= before[name]["misses"]
    assert tiers.loc["memory", "hits"] >= 1
    after = _get(stack, "/performance/cache")["tiers"]
    assert tiers.loc["memory", "p99 vs target"] == verdict(after["memory"]["meets_target"])
    assert "memory p99 (target 1 ms)" in shown(at)


def test_event_rates_per_facility_show_on_the_next_run(stack: Stack) -> None:
    """The first run lists fa, fb and fc; workflows created in fa between two runs give fa
    a positive event rate on the next one."""
    at = page("performance")
    rates = table(at, "events/s").set_index("facility")
    assert sorted(rates.index) == ["fa", "fb", "fc"]
    assert "Rates appear with the next refresh" in shown(at)
    with stack.client("planner") as c:
        for _ in range(2):
            create(c, "fa")
    at.run()
    assert not at.exception, at.exception
    rates = table(at, "events/s").set_index("facility")
    assert rates.loc["fa", "events/s"] > 0
    assert [n for n in at.main if getattr(n, "type", "") == "vega_lite_chart"]  # the bars
    system = _get(stack, "/performance/system")
    assert rates.loc["fa", "applied seq"] <= system["facilities"]["fa"]["applied_seq"]


def test_system_figures_are_the_hubs(stack: Stack) -> None:
    """Events applied and API requests served at least what the API said just before."""
    before = _get(stack, "/performance/system")
    at = page("performance")
    figures = table(at, "figure").set_index("figure")["value"]
    assert int(figures["events applied in all"]) >= before["events_applied"]
    assert int(figures["API requests served"]) > before["api"]["requests"]
    assert figures["link to the broker"] == "connected"


def test_a_viewer_sees_the_same_performance_page(stack: Stack) -> None:
    """A viewer's page has the three tiers and every facility, and no control."""
    at = page("performance", "viewer")
    assert not at.exception and not errors(at)
    assert list(table(at, "tier")["tier"]) == ["memory", "warm", "storage"]
    assert sorted(table(at, "events/s")["facility"]) == ["fa", "fb", "fc"]
    assert not at.button


def test_a_bad_token_is_a_readable_401(stack: Stack) -> None:
    """A token the hub never issued: the 401 as a sentence, no traceback, no tables."""
    at = page("performance", token=BAD_TOKEN)
    assert not at.exception
    assert any("does not accept this token" in e for e in errors(at)), errors(at)
    assert not at.dataframe


def test_a_hub_not_there_is_a_banner_then_the_figures(stack: Stack) -> None:
    """Pointed at a port nobody listens on: the banner; the same session pointed at the
    live hub: the figures on the next run."""
    at = page("performance", url=f"http://127.0.0.1:{free_port()}")
    assert not at.exception
    assert any("not reachable" in e for e in errors(at)), errors(at)
    os.environ["FLEETFLOW_API_URL"] = stack.url
    at.run()
    assert not at.exception and not errors(at)
    assert list(table(at, "tier")["tier"]) == ["memory", "warm", "storage"]


# --- the plain functions ---------------------------------------------------------------


def test_tier_rows_give_hit_rates_and_verdicts() -> None:
    """3 hits and 1 miss: 75 %; no reads: no rate and no verdict."""
    rows = tier_rows({"tiers": {
        "memory": {"hits": 3, "misses": 1, "p50_ms": 0.01, "p99_ms": 0.02, "target_ms": 1,
                   "meets_target": True},
        "warm": {"hits": 0, "misses": 0, "p50_ms": None, "p99_ms": None, "target_ms": 10,
                 "meets_target": None}}})
    assert [(r["tier"], r["hit rate %"], r["p99 vs target"]) for r in rows] == [
        ("memory", 75.0, "✅ meets"), ("warm", None, "— no reads yet")]
    assert verdict(False) == "❌ misses"


def test_facility_rates_need_two_readings() -> None:
    """No earlier reading: no rate; 30 events in 3 s: 10 per second."""
    one = {"facilities": {"fa": {"applied_seq": 10, "lag": 0, "online": True}}}
    two = {"facilities": {"fa": {"applied_seq": 40, "lag": 2, "online": True}}}
    assert facility_rates(None, one, 0.0)[0]["events/s"] is None
    assert facility_rates(one, two, 3.0)[0] == {"facility": "fa", "events/s": 10.0,
                                                "applied seq": 40, "lag": 2, "online": True,
                                                "stale": False}


def test_system_rows_say_it_in_words() -> None:
    """The link state, the store's size and the replicas that broke, in words."""
    rows = {r["figure"]: r["value"] for r in system_rows({
        "link_connected": False, "store_bytes": 3 * 1024 * 1024,
        "replica_errors": {"fa": "unknown template x"}})}
    assert rows["link to the broker"] == "down"
    assert rows["store on disk"] == "3.0 MiB"
    assert rows["facility replicas broken"] == "fa: unknown template x"
    assert (size(512), size(2048)) == ("512 B", "2.0 KiB")
