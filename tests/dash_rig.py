"""What every dashboard test shares (no test here): a real stack and its pages under AppTest.

Use it in a test module like this::

    from dash_rig import Stack, page, serve, shown

    @pytest.fixture(scope="module", autouse=True)
    def stack(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[Stack]:
        yield from serve(tmp_path_factory, mosquitto_bin)

    def test_it_shows(stack: Stack) -> None:
        at = page("overview")                  # run once, as a supervisor
        assert "fa" in shown(at)

- ``serve(...)``: the real stack of ``tests/hub_stack.py`` (Mosquitto, edges ``fa fb fc``,
  fitters in ``fc``, a ``fleetflow hub`` with a token per role: ``stack.tokens[role]``,
  ``stack.client(role)`` for the test's own API calls), made the one ``page`` talks to;
  everything stops when the module ends.
- ``page(name, role="supervisor", *, token=None, url=None)``: an ``AppTest`` of
  ``dashboard/views/NAME.py`` already run once. It runs *through* ``dashboard/app.py``
  (``st.navigation``) and ``AppTest.switch_page``, as a browser would: the badge's
  ``st.page_link`` s resolve against the app, not against a lone page. ``token`` replaces
  the role's token (a bad one: the 401 message), ``url`` the hub's (a dead port: the
  banner). ``at.run()`` again is "the next refresh" (AppTest fires no timers).
- ``shown(at)``: all the text the page shows (headings, markdown, captions, alerts, metric
  labels and values, page links, buttons, and tables as text), for ``in`` checks.
- ``errors(at)``: the texts of its ``st.error`` / ``st.warning`` elements;
  ``at.exception`` must stay empty — a traceback is never a readable message.
- ``table(at, column)``: the first ``st.dataframe`` with that column, as a DataFrame.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hub_stack import Stack, run_stack
from streamlit.testing.v1 import AppTest

__all__ = ["APP", "Stack", "errors", "page", "serve", "shown", "table"]

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboard" / "app.py"
"""The dashboard's entry script."""

_current: list[Stack] = []


def serve(factory: pytest.TempPathFactory, mosquitto_bin: str,
          **stack_args: Any) -> Iterator[Stack]:
    """The module's real stack (``hub_stack.run_stack(**stack_args)``), the one ``page``
    shows; yields it, stops it at the end."""
    for s in run_stack(factory.mktemp("dash"), mosquitto_bin, **stack_args):
        _current.append(s)
        try:
            yield s
        finally:
            _current.remove(s)
            for var in ("FLEETFLOW_API_URL", "FLEETFLOW_API_TOKEN"):
                os.environ.pop(var, None)


def page(name: str, role: str = "supervisor", *, token: str | None = None,
         url: str | None = None, timeout: float = 30) -> AppTest:
    """``dashboard/views/NAME.py`` as ``role`` (or ``token``) against the current stack (or
    ``url``), run once through the app's navigation."""
    assert _current, "no stack: use dash_rig.serve in a module-scoped fixture"
    s = _current[-1]
    os.environ["FLEETFLOW_API_URL"] = url or s.url
    os.environ["FLEETFLOW_API_TOKEN"] = token if token is not None else s.tokens[role]
    # A loaded test machine can take seconds to answer: not the hub being down.
    os.environ["FLEETFLOW_DASHBOARD_TIMEOUT_S"] = "30"
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    if name != "overview":  # the app's default page
        at.switch_page(f"views/{name}.py")
    return at.run()


def _text(node: Any) -> list[str]:
    kind = getattr(node, "type", "")
    if kind == "dataframe":
        return [node.value.to_string()]
    if kind == "metric":
        return [str(node.label), str(node.value), str(node.delta)]
    out = []
    for attr in ("label", "value", "body"):
        try:
            v = getattr(node, attr)
        except (AttributeError, NotImplementedError, ValueError):
            continue
        if isinstance(v, str | int | float) and not isinstance(v, bool) and str(v) not in out:
            out.append(str(v))
    return out


def shown(at: AppTest) -> str:
    """Every text the page shows, one per line."""
    lines: list[str] = []
    for block in (at.main, at.sidebar):
        for node in block:
            lines.extend(_text(node))
    return "\n".join(lines)


def errors(at: AppTest) -> list[str]:
    """The texts of the page's error and warning messages."""
    return [e.value for e in at.error] + [w.value for w in at.warning]


def table(at: AppTest, column: str) -> Any:
    """The first table (``st.dataframe``) of the page with ``column``, as a DataFrame."""
    for frame in at.dataframe:
        if column in frame.value.columns:
            return frame.value
    raise AssertionError(f"no table with a {column!r} column; the page shows:\n{shown(at)}")
