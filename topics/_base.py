"""The building blocks of the native messages: the ``Message`` base, identifiers and
the bases of agent events and edge commands (``topics._models`` has the messages)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from topics._errors import ProtocolError
from topics._names import check_identifier

__all__ = [
    "MAX_TEXT", "AgentKindName", "Data", "Identifier", "IdentifierError", "Message",
    "Text", "Timestamp",
]

MAX_TEXT = 1024
"""Longest free-text string (messages, reasons) a model accepts."""


class IdentifierError(ValueError):
    """A bad identifier inside a model; pydantic turns it into a ``ValidationError``.

    Pydantic only converts ``ValueError``/``AssertionError`` raised by validators, so the
    ``ProtocolError`` of ``check_identifier`` is re-raised as this, with the same sentence.
    """


def _valid_identifier(value: str) -> str:
    try:
        return check_identifier(value)
    except ProtocolError as exc:
        raise IdentifierError(exc.message) from None


Identifier = Annotated[str, AfterValidator(_valid_identifier)]
"""A string that may stand as one topic level: ASCII, 1 to 64 chars, no ``/ + # $``."""
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Timestamp = Annotated[float, Field(ge=0, le=1e11)]
"""Seconds since the epoch (or virtual time); finite and non-negative."""
AgentKindName = Literal["robot", "human", "ai"]
Data = dict[str, Any]
"""Free-form workflow data (step inputs/outputs, variables); size-limited by the codec."""


class Message(BaseModel):
    """Base of every native message: frozen, strict about extra fields, finite numbers."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, str_max_length=MAX_TEXT
    )


class _AgentEventBase(Message):
    event_id: Identifier
    """Unique per agent; duplicates (QoS 1 redelivery) are ignored by it."""
    agent_id: Identifier
    ts: Timestamp


class _StepEventBase(_AgentEventBase):
    workflow_id: Identifier
    step_id: Identifier
    attempt: int = Field(default=1, ge=1, le=1000)


class _CommandBase(Message):
    command_id: Identifier
    """Unique; an agent applies a command id once (idempotent)."""
    ts: Timestamp = 0.0
