"""The CLI's one error type, in its own module so that it is one class under ``python -m``."""

from __future__ import annotations

__all__ = ["CliError", "port_in_use"]


class CliError(Exception):
    """An error the user can fix; printed as one line, exit status 2."""


def port_in_use(flag: str, port: int | str, host: str, *, env: str | None = None,
                zero: bool = False) -> CliError:
    """The one wording of a taken port: the flag, the port, what to do.

    ``zero``: the flag takes 0 (off, or a free port); ``env``: the variable that sets it too.
    """
    choices = "pick another or 0" if zero else "pick another"
    also = f"; env {env}" if env else ""
    return CliError(f"{flag} {port} is in use on {host} ({choices}{also})")
