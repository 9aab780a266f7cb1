"""What the Agents, Coordination and Conflicts pages share: the facilities to choose from,
and a page that comes back by itself when the hub does."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard._api import ApiError, HubApi
from dashboard._ui import live, show_error

__all__ = ["facilities_or_wait", "may_act"]


def facilities_or_wait(hub: HubApi) -> list[dict[str, Any]]:
    """The hub's facilities; if it cannot say (down, a refused token), the readable error,
    and the page stops here — rerunning whole, by itself, on the first refresh the hub
    answers (a live fragment polls it)."""
    try:
        found: list[dict[str, Any]] = hub.get("/facilities")
    except ApiError as exc:
        show_error(exc)

        @live
        def _until_back() -> None:
            try:
                hub.get("/facilities")
            except ApiError:
                return
            st.rerun()

        _until_back()
        st.stop()
    return found


def may_act(hub: HubApi, role: str = "supervisor") -> bool:
    """Whether the token's role is at least ``role`` (``False`` if the hub cannot say)."""
    try:
        return hub.may(role)
    except ApiError:
        return False
