"""The names of the contention rules and conflict strategies, and the check of a strategy
table (facility config or template): a leaf module, so the template and the config can use
it without importing the engine.

A table maps a rule (``agent_double_booked``) or a conflict type (``resource``) to a
strategy; the rule's entry wins over its type's. Safety conflicts are never settled by
priority (docs/design.md §6), so a table that says so is refused rather than ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

__all__ = [
    "CONTENTION_RULES", "DEFAULT_STRATEGY", "STRATEGIES", "Strategy", "check_strategies",
]

Strategy = Literal["priority", "negotiation", "reallocation", "rescheduling", "operator"]
STRATEGIES: tuple[str, ...] = ("priority", "negotiation", "reallocation", "rescheduling",
                               "operator")
"""Every strategy; ``operator`` escalates to a person."""

CONTENTION_RULES: dict[str, str] = {
    "agent_double_booked": "resource",
    "resource_claimed_twice": "resource",
    "window_overlap": "temporal",
}
"""The contention rules (``edge_runtime.core._contention``) and their conflict type."""

DEFAULT_STRATEGY: dict[str, str] = {
    "agent_double_booked": "priority",
    "resource_claimed_twice": "priority",
    "window_overlap": "priority",
}
"""What settles a rule when no table names it: the allocation queue's own order (higher
priority, then older workflow), so a facility that configures nothing keeps that order."""

_KEYS = frozenset({*CONTENTION_RULES, "resource", "temporal", "safety", "data"})


def check_strategies(table: Mapping[str, str]) -> None:
    """``ValueError`` naming the first bad entry of a strategy table."""
    for key, strategy in table.items():
        if key not in _KEYS:
            known = ", ".join(sorted(_KEYS))
            raise ValueError(f"conflict_strategies.{key}: unknown rule or type; known: {known}")
        if strategy not in STRATEGIES:
            raise ValueError(f"conflict_strategies.{key}: unknown strategy {strategy!r}; "
                             f"known: {', '.join(STRATEGIES)}")
        if key == "safety" and strategy != "operator":
            # Safety conflicts stop the robots and clear by themselves or by an operator.
            raise ValueError(f"conflict_strategies.safety: {strategy!r} does not apply: "
                             "safety conflicts are never settled by priority or a strategy, "
                             "only when they clear or by an operator")


def check_alternatives(i: int, resources: tuple[str, ...],
                       alternatives: Mapping[str, tuple[str, ...]]) -> None:
    """``ValueError`` if step ``i`` names alternatives for a resource it does not claim, or
    offers a resource as its own alternative."""
    for resource, others in alternatives.items():
        if resource not in resources:
            raise ValueError(f"steps[{i}].alternatives.{resource}: the step does not claim "
                             f"{resource!r} (its resources: {', '.join(resources) or 'none'})")
        if resource in others or len(set(others)) != len(others):
            raise ValueError(f"steps[{i}].alternatives.{resource}: list other resources, "
                             "each once")
