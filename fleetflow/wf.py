"""The public parts of ``fleetflow wf`` (docs/cli.md), for scripts and tests: the event
line of ``watch`` and ``up``, the text of ``list`` and ``show``, the argument and token
handling, and the API client. The command itself is ``fleetflow/_cmd_wf.py``."""

from __future__ import annotations

from fleetflow._cmd_wf import parse_data
from fleetflow._wf_client import DEFAULT_API, Api, find_token
from fleetflow._wf_format import (
    NOISY,
    TERMINAL,
    TRANSITIONS,
    event_line,
    hlc_time,
    state_path,
    use_colour,
)
from fleetflow._wf_show import render_show, render_table, step_agent, waiting_for

__all__ = [
    "DEFAULT_API", "NOISY", "TERMINAL", "TRANSITIONS", "Api", "event_line", "find_token",
    "hlc_time", "parse_data", "render_show", "render_table", "state_path", "step_agent",
    "use_colour", "waiting_for",
]
