"""Workflow labels: set at creation, changed by ``update_workflow``, kept by snapshots,
final records and replay; bad labels are refused with nothing written."""

from __future__ import annotations

import pytest

from edge_runtime.core import Append, Core, CoreError, Event
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet
from tests.test_core_replay import assert_replays_identically

ONE = load_template({"name": "one", "steps": [{"id": "s", "kind": "robot"}]})


def _fleet() -> ScriptedFleet:
    return ScriptedFleet(Core("f1", {"one": ONE}))


def _events(fl: ScriptedFleet) -> list[Event]:
    return [e.event for e in fl.effects if isinstance(e, Append)]


def test_labels_given_at_creation_show_in_the_view() -> None:
    """A workflow's labels are in its view; one without labels has none."""
    fl = _fleet()
    fl.create("one", "w1", labels={"team": "north", "order.kind": "rush"})
    fl.create("one", "w2")
    assert fl.workflow("w1").labels == {"team": "north", "order.kind": "rush"}  # type: ignore[union-attr]
    assert fl.workflow("w2").labels is None  # type: ignore[union-attr]


@pytest.mark.parametrize("labels", [{"a=b": "x"}, {"team": "a=b"}, {"team": ""},
                                    {"team": "x" * 65}, {"": "x"}, {"team": "\n"},
                                    {f"k{i}": "v" for i in range(33)}])
def test_bad_labels_are_refused_and_write_nothing(labels: dict[str, str]) -> None:
    """A key or value a ``key=value`` filter could not hold is refused; no workflow made."""
    fl = _fleet()
    with pytest.raises(CoreError, match="labels"):
        fl.create("one", "w1", labels=labels)
    assert fl.workflow("w1") is None and not _events(fl)


def test_update_sets_and_removes_labels() -> None:
    """``update_workflow`` merges labels; ``None`` removes one; the reply shows them all."""
    fl = _fleet()
    fl.create("one", "w1", labels={"team": "north", "shift": "day"})
    fl.command("update_workflow", workflow_id="w1", labels={"team": "south", "shift": None})
    assert fl.workflow("w1").labels == {"team": "south"}  # type: ignore[union-attr]
    reply = [e for e in _events(fl) if e.kind == "command_reply"][-1]
    assert reply.data["result"]["labels"] == {"team": "south"}


def test_labels_survive_snapshot_record_and_replay() -> None:
    """Labels come back from a snapshot, from the final record, and by replaying the log."""
    fl = _fleet()
    fl.agent("r1", "robot", [])
    fl.create("one", "w1", labels={"team": "north"})
    fl.create("one", "w2", labels={"team": "south"})
    fl.command("update_workflow", workflow_id="w2", labels={"rush": "yes"})
    fl.run()
    assert fl.workflow("w1").labels == {"team": "north"}  # type: ignore[union-attr]
    assert fl.workflow("w2").labels == {"team": "south", "rush": "yes"}  # type: ignore[union-attr]
    assert_replays_identically(lambda: Core("f1", {"one": ONE}), fl.core, fl.fed, _events(fl))
