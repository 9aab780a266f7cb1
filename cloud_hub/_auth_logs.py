"""Keep bearer tokens out of every log line of the hub's process.

Our own code never logs a token, but libraries under it do at debug level: uvicorn's
WebSocket handshake logs each request header (``< authorization: Bearer ff_…``) on
``uvicorn.error``, and ``--log-level trace`` logs every ASGI scope with its headers. So the
hub redacts where records are made: ``install_token_redaction()`` wraps the logging record
factory, whatever logger or handler a record goes to. Only records that are emitted pay
(a level check comes first); a token keeps its id (``ff_<id>_[redacted]``), which is not
secret and tells which token was used.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

__all__ = ["install_token_redaction", "redact"]

_TOKEN = re.compile(r"\b(ff_[0-9a-f]{12}_)[A-Za-z0-9_-]+")
# An Authorization header's value in the forms libraries log it: `authorization: Bearer x`
# (HTTP dumps), `'authorization': 'Bearer x'` (dicts), `(b'authorization', b'Bearer x')`.
_HEADER = re.compile(r"""(?i)(authorization['"]?\s*[:=,]\s*(?:b?['"])?)([^\r\n'"]+)""")
_lock = threading.Lock()
_installed = False


def redact(text: str) -> str:
    """``text`` without token secrets or Authorization header values."""
    return _HEADER.sub(r"\1[redacted]", _TOKEN.sub(r"\1[redacted]", text))


def install_token_redaction() -> None:
    """Redact tokens in every log record made from now on in this process (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            try:
                message = record.getMessage()
            except Exception:  # a bad format string: the handler reports it, as usual
                return record
            clean = redact(message)
            if clean != message:
                record.msg, record.args = clean, None
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
