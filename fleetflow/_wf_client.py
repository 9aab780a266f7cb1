"""The hub API client of ``fleetflow wf``: where the API is, which token, and every HTTP
error turned into one ``CliError`` line that says what to fix.

The token is found as an operator would look for it: ``--token``, ``--token-file``, env
``FLEETFLOW_TOKEN``, else the admin token ``fleetflow up`` wrote to ``DATA/admin-token``
(``DATA``: ``--data-dir``, env ``FLEETFLOW_DATA``, default ``./.fleetflow``).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from fleetflow._data import DEFAULT_DATA, data_root
from fleetflow._errors import CliError

__all__ = ["DEFAULT_API", "DEFAULT_DATA", "Api", "add_connection_flags", "connect",
           "find_token"]

DEFAULT_API = "http://127.0.0.1:8003"
"""Where ``fleetflow up`` serves the hub API by default."""
_ADMIN_TOKEN_FILE = "admin-token"  # fleetflow._up_parts.ADMIN_TOKEN_FILE (not imported: yaml)


def add_connection_flags(p: argparse.ArgumentParser) -> None:
    """``--api``, ``--token``, ``--token-file`` and ``--data-dir`` on one action's parser."""
    g = p.add_argument_group("connection")
    g.add_argument("--api", metavar="URL", default=os.environ.get("FLEETFLOW_API_URL"),
                   help=f"the hub API (env FLEETFLOW_API_URL; default {DEFAULT_API})")
    g.add_argument("--token", default=None,
                   help="bearer token (env FLEETFLOW_TOKEN; prefer --token-file: arguments "
                        "show in `ps`)")
    g.add_argument("--token-file", type=Path, metavar="FILE", default=None,
                   help="a file holding the token")
    g.add_argument("--data-dir", type=Path, metavar="DIR", default=None,
                   help="`fleetflow up`'s data directory, whose admin-token is used when no "
                        f"token is given (env FLEETFLOW_DATA; default ./{DEFAULT_DATA})")


def find_token(args: argparse.Namespace) -> str:
    """The bearer token, from the first place that has one (see the module's docstring)."""
    if args.token:
        return str(args.token).strip()
    if args.token_file is not None:
        return _read_token(args.token_file, "--token-file")
    if env := os.environ.get("FLEETFLOW_TOKEN", "").strip():
        return env
    data = args.data_dir or data_root()
    path = data / _ADMIN_TOKEN_FILE
    if not path.exists():
        raise CliError(f"no token: {path.resolve()} does not exist; pass --token or "
                       "--token-file, set FLEETFLOW_TOKEN, or start the stack with "
                       "`fleetflow up` (it writes that file)")
    return _read_token(path, "the admin token file")


def _read_token(path: Path, what: str) -> str:
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise CliError(f"{what} {path.resolve()}: {exc.strerror or exc}") from None
    if not token:
        raise CliError(f"{what} {path.resolve()} is empty")
    return token


def connect(args: argparse.Namespace) -> Api:
    """An ``Api`` for the parsed connection flags (token checked to exist, not yet sent)."""
    url = (args.api or DEFAULT_API).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise CliError(f"--api {url!r}: give an http:// or https:// URL, e.g. {DEFAULT_API}")
    return Api(url, find_token(args))


def _message(r: httpx.Response) -> str:
    """The API's error message (``{"error": {"message"}}``), else the body's start."""
    try:
        body = r.json()
    except ValueError:
        return r.text.strip()[:200] or r.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message") or body["error"].get("code") or body)
    return str(body)[:200]


@dataclass
class Api:
    """A small synchronous client of ``/api/v1``; every method raises ``CliError``."""

    url: str
    """The API's base URL, without ``/api/v1``."""
    token: str
    """The bearer token sent with every request (never printed)."""
    timeout: float = 30.0
    """Seconds to wait for an answer (a ``strong`` write waits for the edge)."""

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                json: Any = None, reason: str | None = None) -> Any:
        """One request to ``/api/v1{path}``; its JSON body (``None`` when empty)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        if reason:
            headers["X-Reason"] = reason
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            r = httpx.request(method, f"{self.url}/api/v1{path}", params=clean, json=json,
                              headers=headers, timeout=self.timeout)
        except httpx.TimeoutException:
            raise CliError(f"the hub at {self.url} did not answer within {self.timeout:g} s"
                           ) from None
        except httpx.HTTPError as exc:
            raise CliError(f"no hub at {self.url} ({type(exc).__name__}): start it with "
                           "`fleetflow up` or pass --api") from None
        if r.status_code >= 400:
            raise CliError(self.explain(r.status_code, _message(r)))
        if not r.content:
            return None
        try:
            return r.json()
        except ValueError:  # something else answers at that URL
            raise CliError(f"{self.url} is not a Fleetflow hub (its answer to {path} is not "
                           "JSON): pass the hub's API URL with --api, e.g. "
                           f"{DEFAULT_API}") from None

    def explain(self, status: int, message: str) -> str:
        """One line for an error answer: what went wrong and what to do about it."""
        if status == 401:
            return (f"token refused: {message}; pass a valid --token or --token-file (or "
                    "FLEETFLOW_TOKEN), e.g. the admin-token `fleetflow up` wrote")
        if status == 403:
            return f"not allowed: {message}; use a token with a higher role"
        if status == 404:
            return f"not found: {message}"
        if status == 409:  # the edge's own sentence, which may say "refused" itself
            return message if message.startswith("refused") else f"refused: {message}"
        if status == 422:
            return f"invalid: {message}"
        if status == 503:
            return f"unavailable: {message}"
        return f"the hub answered {status}: {message}"

    def get(self, path: str, **params: Any) -> Any:
        """``GET`` with query ``params`` (``None`` values left out)."""
        return self.request("GET", path, params=params)

    def ws_url(self) -> str:
        """The live stream's URL (``ws://`` or ``wss://``), without a query."""
        return "ws" + self.url.removeprefix("http") + "/ws/workflows"
