"""An agent's ``AgentState`` built without pydantic's validation when every field is known
to be valid — the same object the validated constructor makes, for less.

Every simulated agent reports its state periodically and on every change: in the
1,000-agent benchmark (``fleetflow bench sim``) that is about 720,000 states. Pydantic's
validation of one costs ~3.9 µs (``model_construct`` more, ~5.3 µs: it is Python code);
``agent_state`` checks what validation would check — identifiers by
``topics.check_identifier`` (remembered once passed), the timestamp and battery as finite
floats in range — and then fills the model's fields directly (~1.5 µs). Anything it does
not vouch for (an int where a float goes, a new string that fails the identifier rule, a
value out of range) goes through the validated constructor, which coerces or raises
exactly as before. tests/test_native_state.py checks that both ways give equal states that
encode to the same bytes.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from topics import AgentState, ProtocolError, check_identifier

__all__ = ["agent_state"]

_TEMPLATE: dict[str, Any] = {
    name: None if field.is_required() else field.default
    for name, field in AgentState.model_fields.items()}
"""Every field in the model's order (as a validated ``__dict__`` has them), with the
model's defaults (``type``, ``x``, ``y``, ``mode``, ``e_stop`` …)."""
_SET = frozenset(("agent_id", "ts", "status", "node", "battery", "workflow_id", "step_id"))
"""The fields ``agent_state`` sets (the validated constructor's ``model_fields_set``)."""
_NEW = object.__new__
_SETATTR = object.__setattr__

Status = Literal["idle", "busy", "paused"]


@lru_cache(maxsize=8192)
def _identifier(value: str) -> bool:
    """``value`` passes ``topics.check_identifier`` (the ``Identifier`` rule)."""
    try:
        check_identifier(value)
    except ProtocolError:
        return False
    return True


def _id_ok(value: str | None) -> bool:
    return value is None or (type(value) is str and _identifier(value))


def _number_ok(value: float | None, high: float) -> bool:
    # An exact float in [0, high] is finite and needs no coercion (an int would become a
    # float under validation: that one goes the validated way).
    return value is None or (type(value) is float and 0.0 <= value <= high)


def agent_state(agent_id: str, ts: float, status: Status, node: str | None,
                battery: float | None, workflow_id: str | None, step_id: str | None
                ) -> AgentState:
    """``AgentState(agent_id=…, ts=…, status=…, node=…, battery=…, workflow_id=…,
    step_id=…)``, built directly when every value is known valid (see the module)."""
    if not (type(ts) is float and 0.0 <= ts <= 1e11 and _number_ok(battery, 100.0)
            and type(agent_id) is str and _identifier(agent_id) and _id_ok(node)
            and _id_ok(workflow_id) and _id_ok(step_id)
            and status in ("idle", "busy", "paused")):
        return AgentState(agent_id=agent_id, ts=ts, status=status, node=node,
                          battery=battery, workflow_id=workflow_id, step_id=step_id)
    values = _TEMPLATE.copy()  # updating keeps the model's field order
    values.update(agent_id=agent_id, ts=ts, status=status, node=node, battery=battery,
                  workflow_id=workflow_id, step_id=step_id)
    state: AgentState = _NEW(AgentState)
    _SETATTR(state, "__dict__", values)
    _SETATTR(state, "__pydantic_fields_set__", set(_SET))
    _SETATTR(state, "__pydantic_extra__", None)
    _SETATTR(state, "__pydantic_private__", None)
    return state
