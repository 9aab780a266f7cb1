"""The appliers of the lending events (``edge_runtime.core._lending``): a base of
``Projection``, kept apart so each module stays one concern."""

from __future__ import annotations

from typing import Any

from edge_runtime.core._event import Event
from edge_runtime.core._state import FacilityState, WorkflowRun

__all__ = ["LendingEvents"]


class LendingEvents:
    """``_on_<kind>`` appliers for ``agent_lent``, ``agent_reclaimed``, ``resource_lent``
    and ``resource_reclaimed``."""

    state: FacilityState

    def _on_agent_lent(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        """The agent is lent to ``to``: it leaves the idle list (a step it holds runs on)."""
        agent = self.state.agents[d["agent"]]
        agent.lent_to = d["to"]
        self.state.set_idle(agent)

    def _on_agent_reclaimed(self, wf: WorkflowRun | None, d: dict[str, Any],
                            ev: Event) -> None:
        agent = self.state.agents[d["agent"]]
        agent.lent_to = None
        self.state.set_idle(agent)

    def _on_resource_lent(self, wf: WorkflowRun | None, d: dict[str, Any],
                          ev: Event) -> None:
        self.state.lent_resources[d["resource"]] = d["to"]

    def _on_resource_reclaimed(self, wf: WorkflowRun | None, d: dict[str, Any],
                               ev: Event) -> None:
        self.state.lent_resources.pop(d["resource"], None)
