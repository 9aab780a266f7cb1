"""The Dependencies page against a real stack (``dash_rig``): the graph of one workflow,
of a facility and across facilities is the DOT of what the API reports — a dependency
added through the API shows on the next run, a cross-facility one dashed — and a viewer
sees it too. An unknown workflow is a readable message."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import free_port
from dash_rig import Stack, errors, page, serve, shown
from hub_stack import create, wait_for
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def stack(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[Stack]:
    """One stack for the module's tests (each makes its own workflows)."""
    yield from serve(tmp_path_factory, mosquitto_bin)


def _dot(at: AppTest) -> str:
    charts = at.get("graphviz_chart")
    assert charts, shown(at)
    return str(charts[0].proto.spec)


def _of_workflow(wid: str, role: str = "supervisor") -> AppTest:
    at = page("dependencies", role)
    at.radio(key="dep_scope").set_value("a workflow").run()
    at.text_input(key="dep_wid").input(wid).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_workflow_graph_shows_an_added_dependency_on_the_next_run(stack: Stack) -> None:
    """A workflow's graph has its source; a dependency added through the API appears on
    the next run, with its type, red while it holds the (pending) target."""
    with stack.client("planner") as c:
        first, second = create(c, "fa"), create(c, "fa")
        target = create(c, "fa", depends_on=[first])
    at = _of_workflow(target)
    assert f'"fa/{first}" -> "fa/{target}"' in _dot(at)
    assert f'"fa/{second}"' not in _dot(at)
    with stack.client("planner") as c:
        r = c.post(f"/api/v1/workflows/{target}/dependencies",
                   json={"source": second, "type": "sequential"})
        assert r.status_code == 200, r.text
    at.run()
    assert f'"fa/{second}" -> "fa/{target}" [label="sequential", color="#cb181d"];' in _dot(at)
    assert f'"fa/{target}" [label="{target}\\npending"' in _dot(at)


def test_cross_facility_dependency_is_dashed_in_every_graph(stack: Stack) -> None:
    """A dependency of an ``fb`` workflow on an ``fa`` one: dashed in the workflow's graph
    and in the graph across facilities; the source's dependants name the target."""
    with stack.client("planner") as c:
        source = create(c, "fa")
        target = create(c, "fb", dependencies=[{"source": source, "type": "sequential"}])
    edge = f'"fa/{source}" -> "fb/{target}" [label="sequential", style=dashed'
    assert edge in _dot(_of_workflow(target))
    wait_for(lambda: f'"fa/{source}" -> "fb/{target}" [label="dependant", style=dashed'
             in _dot(_of_workflow(source)), 30, "the source's graph to name its dependant")
    at = page("dependencies")
    at.radio(key="dep_scope").set_value("every facility").run()
    assert edge in _dot(at)
    assert "subgraph cluster_" in _dot(at)


def test_facility_graph_has_only_that_facilitys_workflows(stack: Stack) -> None:
    """A facility's graph: its workflows' dependencies (the API's), not another's."""
    with stack.client("planner") as c:
        a = create(c, "fc", template="api_pick")
        b = create(c, "fc", template="api_pick", depends_on=[a])
        other = create(c, "fb", depends_on=[create(c, "fb")])
    at = page("dependencies")
    at.radio(key="dep_scope").set_value("a facility").run()
    at.selectbox(key="dep_facility").select("fc").run()
    dot = _dot(at)
    assert f'"fc/{a}" -> "fc/{b}"' in dot and other not in dot


def test_viewer_sees_the_graph(stack: Stack) -> None:
    """A viewer token reads the same graph (the page has no control to disable)."""
    with stack.client("planner") as c:
        source = create(c, "fa")
        target = create(c, "fa", depends_on=[source])
    assert f'"fa/{source}" -> "fa/{target}"' in _dot(_of_workflow(target, "viewer"))


def test_unknown_workflow_is_a_readable_message(stack: Stack) -> None:
    """A workflow no facility has: the hub's 404 as a sentence."""
    at = _of_workflow("no-such-wf")
    assert any(e.startswith("Not found") for e in errors(at)), errors(at)


def test_bad_token_and_dead_hub_are_readable() -> None:
    """A token the hub does not know is the 401 sentence; a hub that is not there is the
    banner; neither a traceback."""
    at = page("dependencies", token="ff_000000000000_bad")
    at.radio(key="dep_scope").set_value("every facility").run()
    assert not at.exception
    assert any("does not accept this token" in e for e in errors(at)), errors(at)
    at = page("dependencies", url=f"http://127.0.0.1:{free_port()}")
    at.radio(key="dep_scope").set_value("a facility").run()
    assert not at.exception
    assert any("not reachable" in e for e in errors(at)), errors(at)


def test_without_a_workflow_the_page_opens_on_every_facility(stack: Stack) -> None:
    """Opened without ?id=, the page draws every facility's graph at once."""
    at = page("dependencies")
    assert at.radio(key="dep_scope").value == "every facility"
    assert not at.exception and not errors(at)
