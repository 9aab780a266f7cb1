"""The appliers of vote events (``edge_runtime.core._consensus``): a base of
``Projection``, kept apart so each module stays one concern."""

from __future__ import annotations

from typing import Any

from edge_runtime.core._event import Event
from edge_runtime.core._lifecycle import Lifecycle
from edge_runtime.core._state import WorkflowRun

__all__ = ["ConsensusEvents"]


class ConsensusEvents:
    """``_on_<kind>`` appliers for ``vote_opened``, ``vote_cast`` and ``vote_closed``; the
    decision itself is the usual ``step_decided``."""

    lifecycle: Lifecycle

    def _on_vote_opened(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        """The decision step executes while its vote is open (the workflow waits on it)."""
        assert wf is not None
        st = wf.steps[d["step"]]
        st.ballot = {
            "id": d["vote"], "voters": list(d["voters"]), "quorum": d["quorum"],
            "deadline": d["deadline"], "default": d["default"], "votes": {},
        }
        self.lifecycle.step_quietly(st, "ready")
        self.lifecycle.step(wf, st, "execute")

    def _on_vote_cast(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        ballot = wf.steps[d["step"]].ballot
        assert ballot is not None and ballot["id"] == d["vote"]
        ballot["votes"][d["agent"]] = d["choice"]

    def _on_vote_closed(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        ballot = wf.steps[d["step"]].ballot
        assert ballot is not None and ballot["id"] == d["vote"]
        ballot["result"] = d["choice"]
        ballot["reason"] = d["reason"]
