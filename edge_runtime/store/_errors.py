"""What the event store raises: ``StoreError`` and the refusals derived from it."""

from __future__ import annotations

__all__ = ["FacilityMismatch", "StoreError", "StoreLocked", "StoreOrderError", "StoreVersionError"]


class StoreError(Exception):
    """The event store cannot do what was asked; nothing was written."""


class StoreLocked(StoreError):
    """Another process holds the store read-write."""


class StoreVersionError(StoreError):
    """The store was written by a newer schema version than this build reads."""


class FacilityMismatch(StoreError):
    """The store belongs to another facility."""


class StoreOrderError(StoreError):
    """Events out of order: seq not contiguous, or hlc going backwards."""
