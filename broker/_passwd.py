"""The broker's user file: identities with Mosquitto ``$7$`` password hashes.

One YAML file (default ``./.fleetflow/passwd``, mode 0600) holds every user with its role
and scope. The hashes are exactly what ``mosquitto_passwd`` 2.x writes
(``$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>``), so
:meth:`PasswordFile.mosquitto_passwd` can hand the same hashes to Mosquitto.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from broker._acl import ROLES, Identity
from broker._private_file import locked_file, write_private
from topics import ProtocolError

__all__ = [
    "DEFAULT_ITERATIONS",
    "PasswdError",
    "PasswordFile",
    "User",
    "hash_password",
    "verify_password",
]

DEFAULT_ITERATIONS = 1000
"""PBKDF2 rounds for new hashes. mosquitto_passwd uses 101; more costs every CONNECT."""
_SALT_BYTES = 12  # as mosquitto_passwd
_HEADER = (
    "# Fleetflow broker users; edit with `fleetflow broker passwd add|remove|list`.\n"
    "# Hashes are Mosquitto $7$ (PBKDF2-HMAC-SHA512). Keep this file private.\n"
)


class PasswdError(ValueError):
    """A user file that cannot be read, or a user that does not exist."""


def hash_password(
    password: str, *, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None
) -> str:
    """Hash ``password`` in Mosquitto's ``$7$`` format."""
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """Does ``password`` match the ``$7$`` hash? Malformed hashes never match."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[0] or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except (binascii.Error, ValueError):
        return False
    iterations = int(parts[2])
    if not 1 <= iterations <= 10_000_000:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return hmac.compare_digest(digest, expected)


@dataclass(frozen=True, slots=True)
class User:
    """One entry of the user file."""

    identity: Identity
    """Who the user is and what it may do."""
    password_hash: str
    """Mosquitto ``$7$`` hash of the password."""


class PasswordFile:
    """The user file at ``path``; every method reads it afresh, writes are atomic.

    >>> import tempfile, pathlib
    >>> pf = PasswordFile(pathlib.Path(tempfile.mkdtemp()) / "passwd")
    >>> _ = pf.add(Identity("robot-1", "agent", facility="F1"), "s3cret")
    >>> [u.identity.role for u in pf.users()]
    ['agent']
    >>> pf.check("robot-1", "s3cret") is not None, pf.check("robot-1", "wrong")
    (True, None)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path: Path = Path(path)
        """Where the file lives."""

    def users(self) -> list[User]:
        """Every user, sorted by name; an absent file has none."""
        users = self._load()
        return [users[name] for name in sorted(users)]

    def get(self, name: str) -> User | None:
        """The user called ``name``, if any."""
        return self._load().get(name)

    def check(self, name: str, password: str) -> Identity | None:
        """The identity of ``name`` if ``password`` is right, else None."""
        user = self.get(name)
        if user is None or not verify_password(password, user.password_hash):
            return None
        return user.identity

    def add(
        self, identity: Identity, password: str, *, iterations: int = DEFAULT_ITERATIONS
    ) -> User:
        """Add ``identity`` with ``password``, replacing a user of the same name."""
        if not password:
            raise PasswdError("the password is empty")
        user = User(identity, hash_password(password, iterations=iterations))
        with self._locked():
            users = self._load()
            users[identity.name] = user
            self._save(users)
        return user

    def remove(self, name: str) -> None:
        """Remove the user ``name``; raises ``PasswdError`` if there is none."""
        with self._locked():
            users = self._load()
            if name not in users:
                raise PasswdError(f"no user {name!r} in {self.path}")
            del users[name]
            self._save(users)

    def mosquitto_passwd(self) -> str:
        """The users as a Mosquitto password file (``name:$7$...`` lines)."""
        return "".join(f"{u.identity.name}:{u.password_hash}\n" for u in self.users())

    def _load(self) -> dict[str, User]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise PasswdError(f"cannot read {self.path}: {exc.strerror}") from exc
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise PasswdError(f"{self.path} is not valid YAML: {exc}") from exc
        entries = doc.get("users") if isinstance(doc, dict) else None
        if not isinstance(entries, dict):
            raise PasswdError(f"{self.path} has no 'users' mapping")
        return {str(name): _user(self.path, str(name), entry) for name, entry in entries.items()}

    def _save(self, users: dict[str, User]) -> None:
        doc: dict[str, Any] = {"users": {}}
        for name in sorted(users):
            ident = users[name].identity
            entry: dict[str, str] = {"role": ident.role}
            for field in ("facility", "manufacturer", "serial"):
                if getattr(ident, field) is not None:
                    entry[field] = getattr(ident, field)
            entry["hash"] = users[name].password_hash
            doc["users"][name] = entry
        text = _HEADER + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
        write_private(self.path, text)

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        # Two concurrent `passwd add` would otherwise lose one of the two users.
        return locked_file(self.path)




def _user(path: Path, name: str, entry: object) -> User:
    if not isinstance(entry, dict):
        raise PasswdError(f"{path}: user {name!r} is not a mapping")
    extra = set(entry) - {"role", "facility", "manufacturer", "serial", "hash"}
    if extra:
        raise PasswdError(f"{path}: user {name!r} has unknown keys {sorted(extra)}")
    role, hashed = entry.get("role"), entry.get("hash")
    if role not in ROLES:
        raise PasswdError(f"{path}: user {name!r} has role {role!r}, not one of {ROLES}")
    if not isinstance(hashed, str) or not hashed.startswith("$7$"):
        raise PasswdError(f"{path}: user {name!r} has no $7$ password hash")
    try:
        identity = Identity(
            name,
            role,
            facility=_opt_str(entry.get("facility")),
            manufacturer=_opt_str(entry.get("manufacturer")),
            serial=_opt_str(entry.get("serial")),
        )
    except ProtocolError as exc:
        raise PasswdError(f"{path}: {exc}") from exc
    return User(identity, hashed)


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)
