"""The core's domain errors: an input the core refuses changes nothing and raises one.

The shell turns them into ``edge/errors`` reports; ``reason`` is the report's code.
"""

from __future__ import annotations

__all__ = [
    "CoreError",
    "DependencyCycle",
    "IllegalTransition",
    "StaleInput",
    "TemplateError",
    "UnknownEntity",
]


class CoreError(Exception):
    """An input the workflow engine refuses; nothing changed."""

    reason: str = "refused"
    """Machine-readable code for ``ErrorReport.reason``."""

    def __reduce__(self) -> tuple[type[CoreError], tuple[str]]:
        return (type(self), (str(self),))


class IllegalTransition(CoreError):
    """The event is not accepted in the entity's current state."""

    reason = "illegal_transition"


class DependencyCycle(CoreError):
    """A dependency would close a cycle; the message names it (``a -> b -> a``)."""

    reason = "dependency_cycle"


class TemplateError(CoreError):
    """A template (or a reference to one) is invalid; the message names the field path."""

    reason = "template"


class UnknownEntity(CoreError):
    """A workflow, step, agent or checkpoint the core does not know."""

    reason = "unknown"


class StaleInput(CoreError):
    """An input about an earlier attempt or assignment (e.g. a late ``step_done``)."""

    reason = "stale"
