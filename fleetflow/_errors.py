"""The CLI's one error type, in its own module so that it is one class under ``python -m``."""

from __future__ import annotations

__all__ = ["CliError"]


class CliError(Exception):
    """An error the user can fix; printed as one line, exit status 2."""
