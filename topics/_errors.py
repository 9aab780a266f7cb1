"""The one exception the protocol raises."""

from __future__ import annotations

__all__ = ["ProtocolError"]


class ProtocolError(Exception):
    """A message, topic or identifier that the protocol refuses.

    ``reason`` is a short machine-readable code (``payload_too_large``,
    ``bad_identifier``, ``schema``, ``not_finite`` …) used as a metric label and
    in ``edge/errors`` reports; ``str(err)`` is a sentence for people.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason: str = reason
        """Machine-readable reason code."""
        self.message: str = message
        """Human sentence saying what was wrong."""

    def __reduce__(self) -> tuple[type[ProtocolError], tuple[str, str]]:
        return (type(self), (self.reason, self.message))
