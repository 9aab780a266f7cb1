"""External dependencies: a workflow waiting for one in another facility is held until the
hub's ``resolve_dependency`` (release, fail, skip); the verdict is idempotent, an unknown
dependency refused, and a snapshot keeps a waiting one."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runtime.core import (
    Append,
    BadArguments,
    Core,
    CoreError,
    SourceFacts,
    UnknownEntity,
    WorkflowView,
    dependency_outcome,
)
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet

ONE = load_template({"name": "one", "steps": [{"id": "s", "kind": "robot"}]})
EXTERNAL = {"depends_on": "src", "facility": "f2", "type": "data_flow",
            "conditions": {"outputs": {"tote": "pick.tote_id"}}}


def _held(robots: int = 1) -> ScriptedFleet:
    """``t`` in f1 waits for ``f2/src``."""
    fl = ScriptedFleet(Core("f1", {"one": ONE}))
    for i in range(robots):
        fl.agent(f"r{i}", "robot", [])
    fl.create("one", "t", dependencies=[EXTERNAL])
    return fl


def _view(fl: ScriptedFleet, wid: str = "t") -> WorkflowView:
    wf = fl.workflow(wid)
    assert wf is not None
    return wf


def _resolve(fl: ScriptedFleet, verdict: str, **args: Any) -> dict[str, Any]:
    fx = fl.command("resolve_dependency", workflow_id="t", depends_on="src", facility="f2",
                    verdict=verdict, **args)
    [reply] = [e.event for e in fx if isinstance(e, Append) and e.event.kind == "command_reply"]
    result: dict[str, Any] = reply.data["result"]
    return result


def test_external_dependency_holds_the_target() -> None:
    """The edge records the external dependency as waiting and keeps the target pending."""
    fl = _held()
    t = _view(fl)
    assert t.state == "pending" and t.steps["s"].state == "pending"
    assert t.dependencies == (("src", "data_flow", {"outputs": {"tote": "pick.tote_id"}},
                               "f2", "waiting"),)
    added = next(e.event for e in fl.effects if isinstance(e, Append)
                 and e.event.kind == "workflow_created")
    assert added.data["dependencies"] == [EXTERNAL | {"facility": "f2"}]


def test_release_starts_the_target_with_the_data() -> None:
    """A release starts the target; its data gets what the hub passed."""
    fl = _held()
    assert _resolve(fl, "release", data={"tote": "T-3"})["verdict"] == "release"
    t = _view(fl)
    assert t.steps["s"].state == "assigned" and t.data == {"tote": "T-3"}
    assert t.dependencies[0][4] == "released"


def test_fail_fails_the_target() -> None:
    """A fail verdict fails the target with the hub's reason."""
    fl = _held()
    _resolve(fl, "fail", reason="missing_input: pick.tote_id from f2/src")
    t = _view(fl)
    assert t.state == "failed" and t.reason == "missing_input: pick.tote_id from f2/src"


def test_skip_cancels_the_target() -> None:
    """A skip verdict cancels the target; without a reason one names the source."""
    fl = _held()
    _resolve(fl, "skip")
    t = _view(fl)
    assert t.state == "cancelled" and t.reason == "dependency f2/src skipped"


def test_resolve_again_is_idempotent() -> None:
    """A second verdict (a resent command with another id) changes nothing: ``already``."""
    fl = _held()
    _resolve(fl, "release")
    before, seen = _view(fl), len(fl.effects)
    again = _resolve(fl, "fail")
    assert again["already"] is True and again["status"] == "released"
    assert _view(fl) == before
    kinds = [e.event.kind for e in fl.effects[seen:] if isinstance(e, Append)]
    assert kinds == ["command_reply"]


def test_unknown_dependency_refused() -> None:
    """A verdict on a dependency the target does not have is refused; no event."""
    fl = _held()
    seq = fl.core.last_seq
    with pytest.raises(UnknownEntity, match="no external dependency on f3/src"):
        fl.command("resolve_dependency", workflow_id="t", depends_on="src", facility="f3",
                   verdict="release")
    with pytest.raises(UnknownEntity, match="unknown workflow 'nobody'"):
        fl.command("resolve_dependency", workflow_id="nobody", depends_on="src",
                   facility="f2", verdict="release")
    with pytest.raises(BadArguments, match="only a release passes data"):
        _resolve(fl, "fail", data={"x": 1})
    with pytest.raises(BadArguments, match="verdict"):
        _resolve(fl, "maybe")
    assert fl.core.last_seq == seq


def test_added_later_and_refused_once_started() -> None:
    """add_dependency with a facility holds a pending target; a started one refuses it."""
    fl = ScriptedFleet(Core("f1", {"one": ONE}))
    fl.create("one", "gate")
    fl.create("one", "t", depends_on=["gate"])
    fl.command("add_dependency", workflow_id="t", depends_on="src", facility="f2")
    assert _view(fl).dependencies == (("src", "sequential", {}, "f2", "waiting"),)
    fl.create("one", "running")
    with pytest.raises(CoreError, match="already started"):
        fl.command("add_dependency", workflow_id="running", depends_on="src", facility="f2")


def test_own_facility_is_local() -> None:
    """A dependency naming the edge's own facility is a local one (the edge decides it)."""
    fl = ScriptedFleet(Core("f1", {"one": ONE}))
    fl.create("one", "src")
    fl.create("one", "t", dependencies=[{"depends_on": "src", "facility": "f1"}])
    assert _view(fl).depends_on == ("src",) and _view(fl).dependencies == ()


def test_snapshot_restore_keeps_a_waiting_external_dependency() -> None:
    """After a restore the target still waits, and the hub's release still starts it."""
    fl = _held()
    core = Core.restore(fl.core.snapshot(), "f1", {"one": ONE})
    restored = ScriptedFleet(core, start=fl.now)
    assert _view(restored).dependencies[0][3:] == ("f2", "waiting")
    restored.command("resolve_dependency", workflow_id="t", depends_on="src", facility="f2",
                     verdict="release", data={"tote": "T-4"})
    t = _view(restored)
    assert t.state.startswith("active") and t.data == {"tote": "T-4"}


def test_a_long_reason_of_the_shared_rule_fits_the_verdict() -> None:
    """A skip naming a near-1024-character condition is cut so the hub's verdict carrying
    it is still taken."""
    when = "data.n == 1 && " * 67 + "true"  # 1009 characters
    facts = SourceFacts("completed", True, {"n": 2}, {}, frozenset())
    outcome = dependency_outcome("conditional", {"when": when}, facts, "f2/src")
    assert outcome.verdict == "skip" and len(outcome.reason) == 1024
    fl = _held()
    _resolve(fl, "skip", reason=outcome.reason)
    assert _view(fl).reason == outcome.reason
