"""The hub's API tokens: roles, and a file that holds only their hashes.

A token is ``ff_<id>_<secret>``: ``id`` (12 hex digits) finds its record without scanning,
``secret`` is 32 random bytes (URL-safe base64). The file ``DIR/tokens.json`` (mode 0600,
written atomically under a lock, like the broker's user file) keeps the sha256 of the whole
token, never the token: a 256-bit random secret needs no salt or slow hash, since nothing
can be guessed from its digest. A token is shown once, when it is created.

The running hub and ``fleetflow hub token create|revoke`` share the file: the hub re-reads
it when it changes (one ``stat`` per check), so a revoked token is refused at its next
request without a restart.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broker import locked_file, write_private

__all__ = ["TOKEN_FILE", "Role", "TokenError", "TokenInfo", "TokenStore"]

TOKEN_FILE = "tokens.json"
_PREFIX = "ff_"
_ID_RE = re.compile(r"[0-9a-f]{12}")
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
# Compared against when a token's id is unknown, so every check costs one comparison.
_NO_DIGEST = "0" * 64


class TokenError(ValueError):
    """A token file that cannot be read or written, or a bad name, role or request."""


class Role(enum.IntEnum):
    """What a token may do; each role may do everything the lower ones may."""

    viewer = 1
    supervisor = 2
    planner = 3
    admin = 4

    @classmethod
    def parse(cls, value: Role | str) -> Role:
        """``value`` as a role; ``TokenError`` naming the roles if it is none."""
        if isinstance(value, Role):
            return value
        try:
            return cls[value]
        except KeyError:
            names = ", ".join(r.name for r in cls)
            raise TokenError(f"role {value!r} is not one of {names}") from None

    def allows(self, minimum: Role) -> bool:
        """May a holder of this role do what needs ``minimum``?"""
        return self >= minimum


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """One token's record, without any secret: what ``list`` shows and a check returns."""

    id: str
    name: str
    role: Role
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None

    def to_json(self) -> dict[str, Any]:
        """The record as ``list --json`` prints it."""
        return {"id": self.id, "name": self.name, "role": self.role.name,
                "created_at": self.created_at, "revoked_at": self.revoked_at}


@dataclass(frozen=True, slots=True)
class _Record:
    info: TokenInfo
    digest: str


def digest(token: str) -> str:
    """The sha256 (hex) that the file keeps for ``token``."""
    return hashlib.sha256(token.encode()).hexdigest()


def _split(token: str) -> str | None:
    """The id of a well-formed token, else ``None``."""
    if len(token) != len(_PREFIX) + 12 + 1 + 43 or not token.startswith(_PREFIX):
        return None
    token_id, sep, secret = token[len(_PREFIX):].partition("_")
    if not sep or not _ID_RE.fullmatch(token_id) or not _SECRET_RE.fullmatch(secret):
        return None
    return token_id


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class TokenStore:
    """``DIR/tokens.json``: create, list, revoke and check tokens."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._by_id: dict[str, _Record] = {}

    @classmethod
    def in_dir(cls, data_dir: Path) -> TokenStore:
        """The token file of the hub whose data directory is ``data_dir``."""
        return cls(Path(data_dir) / TOKEN_FILE)

    # --- management (the CLI, `fleetflow up`) ----------------------------------------

    def create(self, name: str, role: Role | str, *, replace: bool = False) -> str:
        """Issue a token for identity ``name``; returns it (the only time it is seen).
        An active token of that name is an error unless ``replace`` (which revokes it);
        a revoked one is replaced."""
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise TokenError(
                f"token name {name!r} must be 1-64 characters of letters, digits and . _ @ -, "
                "starting with a letter or digit")
        parsed = Role.parse(role)
        with self._locked():
            records = self._load()
            same = [r for r in records.values() if r.info.name == name]
            if any(r.info.active for r in same) and not replace:
                raise TokenError(f"a token named {name!r} exists; revoke it first "
                                 "(or use --replace)")
            for r in same:
                del records[r.info.id]
            token_id = secrets.token_hex(6)
            while token_id in records:
                token_id = secrets.token_hex(6)
            token = f"{_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
            records[token_id] = _Record(TokenInfo(token_id, name, parsed, _now()), digest(token))
            self._save(records)
        return token

    def tokens(self) -> list[TokenInfo]:
        """Every token's record (active and revoked), by name; no secrets."""
        return sorted((r.info for r in self._load().values()), key=lambda i: i.name)

    def revoke(self, name: str) -> TokenInfo:
        """Revoke the active token of ``name``; ``TokenError`` if there is none."""
        with self._locked():
            records = self._load()
            for r in records.values():
                if r.info.name == name and r.info.active:
                    info = TokenInfo(r.info.id, name, r.info.role, r.info.created_at, _now())
                    records[r.info.id] = _Record(info, r.digest)
                    self._save(records)
                    return info
        raise TokenError(f"no active token named {name!r} in {self.path}")

    # --- the hot path (every API request) --------------------------------------------

    def check(self, token: str) -> TokenInfo | None:
        """The record of ``token`` if it is well formed, known and not revoked, else
        ``None``. The digests are compared in constant time, also for an unknown id."""
        token_id = _split(token)
        record = self._current().get(token_id) if token_id is not None else None
        expected = record.digest if record is not None else _NO_DIGEST
        matches = hmac.compare_digest(digest(token), expected)
        if record is None or not matches or not record.info.active:
            return None
        return record.info

    def _current(self) -> dict[str, _Record]:
        """The records, re-read when the file changed (a revoke by the CLI)."""
        try:
            st = os.stat(self.path)
            seen: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            seen = None
        with self._lock:
            if seen != self._seen or seen is None:
                self._by_id = self._load()
                self._seen = seen
            return self._by_id

    # --- the file --------------------------------------------------------------------

    def _load(self) -> dict[str, _Record]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise TokenError(f"cannot read {self.path}: {exc.strerror}") from exc
        try:
            doc = json.loads(text)
            entries = doc["tokens"]
            records = [_record(e) for e in entries]
        except (ValueError, KeyError, TypeError) as exc:
            raise TokenError(f"{self.path} is not a Fleetflow token file ({exc})") from exc
        return {r.info.id: r for r in records}

    def _save(self, records: dict[str, _Record]) -> None:
        entries = [{**r.info.to_json(), "sha256": r.digest}
                   for r in sorted(records.values(), key=lambda r: r.info.name)]
        text = json.dumps({"version": 1, "tokens": entries}, indent=2) + "\n"
        write_private(self.path, text)

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        # Two concurrent `token create` would otherwise lose one of the two tokens.
        return locked_file(self.path)


def _record(entry: Any) -> _Record:
    """One file entry, checked: a hand-edited file fails loudly, not open."""
    if not isinstance(entry, dict):
        raise ValueError("a token entry is not an object")
    token_id, name, sha = entry["id"], entry["name"], entry["sha256"]
    revoked = entry.get("revoked_at")
    if not (isinstance(token_id, str) and _ID_RE.fullmatch(token_id)):
        raise ValueError(f"bad token id {token_id!r}")
    if not (isinstance(name, str) and _NAME_RE.fullmatch(name)):
        raise ValueError(f"bad token name {name!r}")
    if not (isinstance(sha, str) and _DIGEST_RE.fullmatch(sha)):
        raise ValueError(f"bad digest for token {name!r}")
    if revoked is not None and not isinstance(revoked, str):
        raise ValueError(f"bad revoked_at for token {name!r}")
    try:
        role = Role[entry["role"]]
    except KeyError:
        raise ValueError(f"bad role {entry['role']!r} for token {name!r}") from None
    return _Record(TokenInfo(token_id, name, role, str(entry["created_at"]), revoked), sha)

