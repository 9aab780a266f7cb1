"""What every page shares: the hub client, the refresh period, errors as sentences, and the
badge counting what needs a human now.

Streamlit reruns a page's script on every interaction, so the client lives in
``st.cache_resource`` (one per API URL and token); live parts are ``st.fragment`` s with
``run_every`` (``live``). Settings come from the environment ``fleetflow dashboard`` sets:
``FLEETFLOW_API_URL``, ``FLEETFLOW_API_TOKEN`` and ``FLEETFLOW_DASHBOARD_REFRESH_S``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import streamlit as st

from dashboard import _attention
from dashboard._api import ApiError, HubApi, HubDown
from dashboard._attention import Attention

__all__ = ["REFRESH_S", "api", "attention", "badge", "call", "live", "show_error"]

REFRESH_S = float(os.environ.get("FLEETFLOW_DASHBOARD_REFRESH_S", "2") or 2)
"""Seconds between two refreshes of a page's live parts (default 2)."""

TIMEOUT_S = 5.0
"""Seconds one API call may take before the page says the hub is not reachable, unless
``FLEETFLOW_DASHBOARD_TIMEOUT_S`` says otherwise (the tests, on a loaded machine, allow more)."""

T = TypeVar("T")
_APP_DIR = Path(__file__).resolve().parent


@st.cache_resource
def _client(url: str, token: str, timeout: float) -> HubApi:
    return HubApi(url, token, timeout=timeout)


def api() -> HubApi:
    """The hub client of this dashboard (one per process, kept across reruns)."""
    url = os.environ.get("FLEETFLOW_API_URL", "http://127.0.0.1:8003")
    token = os.environ.get("FLEETFLOW_API_TOKEN", "")
    if not token:
        st.error("No API token: start the dashboard with `fleetflow dashboard --token …`.")
        st.stop()
    timeout = float(os.environ.get("FLEETFLOW_DASHBOARD_TIMEOUT_S") or TIMEOUT_S)
    return _client(url, token, timeout)


def show_error(exc: ApiError) -> None:
    """An API error as a readable message; a hub that is down as a banner."""
    if isinstance(exc, HubDown):
        st.warning(exc.readable, icon="⚠️")
    else:
        st.error(exc.readable)


def call(fn: Callable[[], T]) -> T | None:
    """``fn()``, or ``None`` after showing its ``ApiError`` readably."""
    try:
        return fn()
    except ApiError as exc:
        show_error(exc)
        return None


def live(body: Callable[[], None]) -> Callable[[], None]:
    """``body`` as a fragment that reruns every ``REFRESH_S`` seconds."""
    return st.fragment(run_every=REFRESH_S)(body)


def attention(hub: HubApi) -> Attention:
    """What needs a human now (``dashboard._attention``): workflows waiting for an operator,
    escalated conflicts, safety stops standing."""
    return _attention.attention(hub)


def _badge_body() -> None:
    try:
        counts = attention(api())
    except ApiError as exc:
        show_error(exc)
        return
    if counts.total == 0:
        st.caption("✅ Nothing needs a human right now.")
        return
    more = "+" if counts.capped else ""
    for col, (page, label) in zip(st.columns(3), [
            ("views/recovery.py", f"🛠 {len(counts.manual)}{more} waiting for an operator"),
            ("views/conflicts.py", f"⚔ {len(counts.escalated)} escalated conflicts"),
            ("views/agents.py", f"🛑 {len(counts.safety)} safety stops")], strict=True):
        if (_APP_DIR / page).is_file():
            col.page_link(page, label=label)
        else:  # that page is not built yet: the count without a link
            col.markdown(label)


_live_badge = st.fragment(run_every=REFRESH_S)(_badge_body)


def badge() -> None:
    """The badge on every page (live): counts of what needs a human now, each linking to
    the page where it is dealt with (Recovery, Conflicts, Agents); a hub that is down is a
    banner here, gone by itself on the refresh after the hub is back."""
    _live_badge()
