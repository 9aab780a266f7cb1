"""Archiving: finished workflows leave the core's memory (their record goes to the store).

At the end of each input, every workflow that ended during it (and those it waited for) is
archived if it completed or was cancelled and no pending workflow still waits for it.
Failed workflows stay: an operator may recover them.
"""

from __future__ import annotations

from edge_runtime.core._context import Context
from edge_runtime.core._effects import Archive
from edge_runtime.core._views import encode_workflow_record

__all__ = ["Archiver"]


class Archiver:
    """Drops finished workflows from memory, with a ``workflow_archived`` event each."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        """``CoreConfig.archive_terminal``."""

    def archive_ready(self, ctx: Context) -> None:
        """Archive each of ``ctx.archivable`` that is completed or cancelled and that no
        pending workflow still waits for."""
        candidates, ctx.archivable = ctx.archivable, []
        if not self.enabled:
            return
        workflows = ctx.state.workflows
        for wid in dict.fromkeys(candidates):
            wf = workflows.get(wid)
            if wf is None or wf.state not in ("completed", "cancelled"):
                continue
            if any(
                (dep := workflows.get(d)) is not None and dep.state == "pending"
                for d in wf.dependents
            ):
                continue
            record = encode_workflow_record(wf)
            ctx.emit("workflow_archived", wid, {"state": wf.state})
            ctx.effects.append(Archive(wid, record))
