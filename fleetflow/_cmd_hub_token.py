"""``fleetflow hub token create|list|revoke``: the hub's API tokens (docs/hub.md, "Auth").

``register_token(hub_subparsers)`` is called by ``fleetflow/_cmd_hub.py`` on the ``hub``
command's subparsers. The token file is ``DIR/tokens.json`` in the hub's data directory
(``--data``, env ``FLEETFLOW_HUB_DATA``, default ``$FLEETFLOW_DATA/hub``, that is
``./.fleetflow/hub`` when ``FLEETFLOW_DATA`` is unset); a running hub sees
every change at its next request.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from fleetflow._data import data_root
from fleetflow._errors import CliError

__all__ = ["DEFAULT_HUB_DATA", "hub_data_dir", "register_token"]

DEFAULT_HUB_DATA = ".fleetflow/hub"
"""The hub's data directory when neither ``FLEETFLOW_HUB_DATA`` nor ``FLEETFLOW_DATA`` is set."""
_ROLES = ("viewer", "supervisor", "planner", "admin")


def _data_flag(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: a `--data` given to `fleetflow hub` itself is kept when this one is absent.
    p.add_argument("--data", type=Path, default=argparse.SUPPRESS, metavar="DIR",
                   help="the hub's data directory (env FLEETFLOW_HUB_DATA; default "
                        "DATA/hub, DATA being env FLEETFLOW_DATA or ./.fleetflow)")


def register_token(hub_sub: Any) -> None:
    """Add ``token`` and its ``create``, ``list`` and ``revoke`` actions."""
    tp = hub_sub.add_parser(
        "token", help="create, list or revoke API tokens (stored hashed)",
        description="Manage the bearer tokens of the hub's REST API. Roles: viewer < "
        "supervisor < planner < admin; each may do what the lower ones may.")
    tsub = tp.add_subparsers(dest="token_command", metavar="ACTION", required=True)

    create = tsub.add_parser("create", help="issue a token; it is printed once, on stdout")
    create.add_argument("--name", required=True,
                        help="the identity the audit trail records for this token's writes")
    create.add_argument("--role", required=True, choices=_ROLES)
    create.add_argument("--replace", action="store_true",
                        help="revoke the active token of that name and issue a new one")
    _data_flag(create)
    create.set_defaults(handler=_create)

    ls = tsub.add_parser("list", help="list tokens: name, role, id, created, revoked (no secrets)")
    ls.add_argument("--json", action="store_true", help="one JSON array")
    _data_flag(ls)
    ls.set_defaults(handler=_list)

    rv = tsub.add_parser("revoke", help="revoke a name's token (refused from its next request)")
    rv.add_argument("name")
    _data_flag(rv)
    rv.set_defaults(handler=_revoke)


def _store(args: argparse.Namespace) -> Any:
    from cloud_hub import TokenStore

    return TokenStore.in_dir(hub_data_dir(getattr(args, "data", None)))


def hub_data_dir(given: str | Path | None) -> Path:
    """The hub's data directory: ``--data``, else env ``FLEETFLOW_HUB_DATA``, else
    ``$FLEETFLOW_DATA/hub`` (``./.fleetflow/hub``): where ``fleetflow up`` keeps it."""
    return Path(given or os.environ.get("FLEETFLOW_HUB_DATA") or data_root() / "hub")


def _create(args: argparse.Namespace) -> int:
    from cloud_hub import TokenError

    store = _store(args)
    try:
        token = store.create(args.name, args.role, replace=args.replace)
    except TokenError as exc:
        raise CliError(str(exc)) from None
    print(token, flush=True)
    print(f"fleetflow hub token: {args.role} token for {args.name!r} written (hashed) to "
          f"{store.path}; it is shown only this once", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    from cloud_hub import TokenError

    try:
        tokens = _store(args).tokens()
    except TokenError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps([t.to_json() for t in tokens], indent=2))
        return 0
    rows = [("NAME", "ROLE", "ID", "CREATED", "REVOKED")]
    rows += [(t.name, t.role.name, t.id, t.created_at, t.revoked_at or "-") for t in tokens]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[4]]))
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from cloud_hub import TokenError

    try:
        info = _store(args).revoke(args.name)
    except TokenError as exc:
        raise CliError(str(exc)) from None
    print(f"revoked {info.name} ({info.role.name}, id {info.id})")
    return 0
