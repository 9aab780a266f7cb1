"""amqtt 0.12 plugins: password-file authentication and the topic ACL of :mod:`broker._acl`.

Loaded by dotted path from the broker's ``plugins`` config (see ``broker._server``).
The authenticated :class:`Identity` rides on ``session.attributes`` from the auth plugin
to the topic plugin.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass

from amqtt.contexts import Action as AmqttAction
from amqtt.contexts import BaseContext
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from broker._acl import Action, Identity, allowed
from broker._passwd import PasswdError, PasswordFile, User, verify_password

__all__ = ["IDENTITY_KEY", "FleetflowAuthPlugin", "FleetflowTopicPlugin"]

IDENTITY_KEY = "fleetflow.identity"
"""Key of the authenticated identity in ``session.attributes``."""
_ANONYMOUS = Identity("anonymous", "admin")
_log = logging.getLogger("fleetflow.broker")


class FleetflowAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """Accepts a CONNECT only with a known user name and its password (or, in dev mode,
    with no user name at all), and only if the will topic is one the user may publish."""

    @dataclass
    class Config:
        """Plugin configuration (the ``plugins`` entry of the broker config)."""

        passwd_file: str = ".fleetflow/passwd"
        """The Fleetflow user file (YAML, see ``PasswordFile``)."""
        allow_anonymous_dev: bool = False
        """Let clients without a user name in, with the admin ACL. Development only."""

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self._passwd = PasswordFile(self.config.passwd_file)
        self._anonymous: bool = self.config.allow_anonymous_dev
        self._stamp: tuple[int, int, int] | None = None
        self._users: dict[str, User] = {}

    def _current_users(self) -> dict[str, User]:
        # Re-read the file when it changed, so `passwd add` works on a running broker.
        try:
            st = os.stat(self._passwd.path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = (0, 0, 0)
        if stamp != self._stamp:
            try:
                self._users = {u.identity.name: u for u in self._passwd.users()}
            except PasswdError as exc:  # keep the last good user list
                _log.error("keeping the previous users: %s", exc)
            self._stamp = stamp
        return self._users

    async def authenticate(self, *, session: Session) -> bool:
        """True if the client may connect; the identity is stored on the session."""
        identity = await self._identify(session)
        if identity is None:
            return False
        previous = session.attributes.get(IDENTITY_KEY)
        if previous is not None and previous.name != identity.name:
            # A persistent session belongs to the user who made it.
            _log.info("refused %s: session %r belongs to another user", identity.name,
                      session.client_id)
            return False
        if session.will_flag and not allowed(identity, "publish", session.will_topic or ""):
            _log.info("refused %s: may not publish its will to %r", identity.name,
                      session.will_topic)
            return False
        session.attributes[IDENTITY_KEY] = identity
        return True

    async def _identify(self, session: Session) -> Identity | None:
        if not session.username:
            if self._anonymous:
                return _ANONYMOUS
            _log.info("refused client %r: no user name", session.client_id)
            return None
        user = self._current_users().get(session.username)
        # PBKDF2 releases the GIL; off the loop, other clients keep flowing meanwhile.
        if user is not None and await asyncio.to_thread(
            verify_password, session.password or "", user.password_hash
        ):
            return user.identity
        _log.info("refused user %r: unknown user or wrong password", session.username)
        return None


class FleetflowTopicPlugin(BaseTopicPlugin):  # type: ignore[misc]
    """Applies :func:`broker._acl.allowed` to every publish, subscribe and delivery."""

    @dataclass
    class Config:
        """No options: the rules follow from each user's identity."""

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: AmqttAction | None = None,
    ) -> bool:
        """True if the session's identity may do ``action`` on ``topic``."""
        identity = session.attributes.get(IDENTITY_KEY) if session is not None else None
        if not isinstance(identity, Identity) or topic is None or action is None:
            return False
        verb: Action = {
            AmqttAction.PUBLISH: "publish",
            AmqttAction.SUBSCRIBE: "subscribe",
            AmqttAction.RECEIVE: "receive",
        }[action]  # type: ignore[assignment]
        ok = allowed(identity, verb, topic)
        if not ok:
            _log.info("denied %s %s on %r", identity.name, verb, topic)
        return ok
