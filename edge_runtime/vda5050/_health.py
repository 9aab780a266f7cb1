"""The health of the master's links to its AGVs (``edge/vda``), sans-IO: ``now`` is an input.

``VdaHealth.links(master, now)`` makes the ``topics.VdaLinks`` the shell publishes retained on
``edge/vda`` (docs/vda5050.md, "Link health"): one ``VdaLink`` per AGV the master has a
session for, or whose messages the edge refused. It reads the sessions (connection, last
state and its errors, the running order and what the AGV acknowledged of it, instant
actions no state has shown yet) and two counters kept since the edge started, neither of
them a durable record (volatile link state, like the message itself):

- rejections: ``VdaMaster.rejections``, counted by the master as it tracks each state;
- schema errors: ``VdaHealth.schema_errors``, counted here as the shell reports each AGV
  message it refused (``refused``).

The AGV's agent id is the one the bridge gives it (``VdaBridge``): its serial number.

How long an order or instant action has waited counts from when this module first saw it
unacknowledged, so from its first sending, not its last resending (the master resends
every ``resend_after_s``, which resets ``sent_at``); the first sighting takes ``sent_at``,
which after an edge restart is the last sending.
"""

from __future__ import annotations

from typing import Any

from edge_runtime.vda5050._master import VdaMaster
from edge_runtime.vda5050._session import AgvSession
from topics import (
    DEFAULT_LIMITS,
    MAX_LINKS,
    Limits,
    ProtocolError,
    VdaAgvError,
    VdaLink,
    VdaLinks,
    encode,
)

__all__ = ["MAX_COUNTED", "VdaHealth"]

MAX_COUNTED = 10_000
"""AGVs whose refused messages are counted; an AGV beyond these is not (the broker's ACL
lets an AGV publish only as itself, so this is a guard, not a limit met in use)."""
_MAX_AGE = 1e9
_MAX_ERRORS = 8
Key = tuple[str, str]
"""(manufacturer, serialNumber)."""


def _age(now: float, since: float | None) -> float | None:
    """Seconds from ``since`` to ``now``, within the model's range (a clock set back: 0)."""
    return None if since is None else min(_MAX_AGE, max(0.0, now - since))


def _errors(state: dict[str, Any] | None) -> list[VdaAgvError]:
    """The first errors of an AGV's last state, cut to the model's lengths."""
    out: list[VdaAgvError] = []
    for err in (state or {}).get("errors", []):
        if len(out) == _MAX_ERRORS:
            break
        if not isinstance(err, dict) or err.get("errorLevel") not in ("WARNING", "FATAL"):
            continue  # the schema let nothing else through; a loaded record might
        out.append(VdaAgvError(error_type=str(err.get("errorType", ""))[:128],
                               level=err["errorLevel"],
                               description=str(err.get("errorDescription", ""))[:256]))
    return out


def _need(link: VdaLink) -> tuple[bool, bool, bool, bool, str]:
    """Sort key putting the AGVs most in need first: lost, waiting on an acknowledgement,
    reporting errors, with refused messages or rejections; then by agent id."""
    return (not link.lost, link.order_unacked_s is None and not link.instants_unacked,
            not link.errors, not (link.schema_errors or link.rejections), link.agent_id)


class VdaHealth:
    """Builds an edge's ``VdaLinks``; holds the counters and first sightings it needs."""

    def __init__(self, facility: str, limits: Limits = DEFAULT_LIMITS) -> None:
        self.facility = facility
        """The facility the message names."""
        self.limits = limits
        """The payload limit the encoded message must fit (the hub decodes with it)."""
        self.schema_errors: dict[Key, int] = {}
        """Messages of each AGV the edge refused since it started (size, schema, identity,
        NaN, a version it does not speak), by (manufacturer, serialNumber)."""
        self._since: dict[tuple[str, str, str], float] = {}
        """(manufacturer, serial, what) -> when an unacknowledged order update or instant
        action was first seen so; ``what`` names it (``order {id} {update}``, ``instant
        {actionId}``). Forgotten once acknowledged."""

    def refused(self, manufacturer: str, serial_number: str) -> None:
        """Count one message of this AGV that the edge refused."""
        key = (manufacturer, serial_number)
        if key in self.schema_errors or len(self.schema_errors) < MAX_COUNTED:
            self.schema_errors[key] = self.schema_errors.get(key, 0) + 1

    def links(self, master: VdaMaster, now: float) -> tuple[VdaLinks, bytes]:
        """The ``VdaLinks`` at ``now`` and its encoding, which fits ``limits``: with more
        AGVs than fit, those most in need are kept and the rest counted in ``left_out``."""
        seen: set[tuple[str, str, str]] = set()
        all_links: list[VdaLink] = []
        for key in sorted({*master.sessions, *self.schema_errors}):
            link = self._link(key, master.sessions.get(key), master, now, seen)
            if link is not None:
                all_links.append(link)
        for gone in self._since.keys() - seen:
            del self._since[gone]
        all_links.sort(key=_need)
        return self._fit(all_links, now)

    def _fit(self, ranked: list[VdaLink], now: float) -> tuple[VdaLinks, bytes]:
        """The most in need of ``ranked`` that fit ``MAX_LINKS`` and the payload limit."""
        def attempt(n: int) -> tuple[VdaLinks, bytes] | None:
            kept = sorted(ranked[:n], key=lambda x: (x.agent_id, x.manufacturer))
            message = VdaLinks(facility=self.facility, links=kept,
                               left_out=len(ranked) - n, ts=now)
            try:
                return message, encode(message, self.limits)
            except ProtocolError:
                return None  # too large (or too many items for the limits): keep fewer
        best = attempt(min(len(ranked), MAX_LINKS))
        if best is not None:
            return best
        low, high = 0, min(len(ranked), MAX_LINKS) - 1  # fits with `low`; not above `high`
        found = attempt(0)
        assert found is not None, "an empty VdaLinks always fits"
        while low < high:
            mid = (low + high + 1) // 2
            got = attempt(mid)
            if got is None:
                high = mid - 1
            else:
                low, found = mid, got
        return found

    def _link(self, key: Key, s: AgvSession | None, master: VdaMaster, now: float,
              seen: set[tuple[str, str, str]]) -> VdaLink | None:
        """One AGV's link, or None if its names cannot stand in the message."""
        manufacturer, serial = key
        fields: dict[str, Any] = {
            "agent_id": serial, "manufacturer": manufacturer, "serial_number": serial,
            "rejections": master.rejections.get(key, 0),
            "schema_errors": self.schema_errors.get(key, 0),
        }
        if s is not None:
            state = s.state
            fields.update(
                version=None if s.version is None else s.version[:32],
                connection=s.connection, lost=s.lost,
                state_age_s=_age(now, s.state_at) if state is not None else None,
                operating_mode=None if state is None or state.get("operatingMode") is None
                else str(state["operatingMode"])[:32],
                errors=_errors(state))
            a = s.active
            if a is not None:
                fields["order_id"] = a.plan.order_id[:128]
                if a.acked_update < a.plan.update_id:
                    what = f"order {a.plan.order_id} {a.plan.update_id}"
                    fields["order_unacked_s"] = _age(now, self._first(key, what, a.sent_at,
                                                                      seen))
            waiting = [self._first(key, f"instant {action_id}", sent.sent_at, seen)
                       for action_id, sent in s.instants.items() if not sent.seen]
            if waiting:
                fields.update(instants_unacked=len(waiting),
                              oldest_instant_s=_age(now, min(waiting)))
        try:
            return VdaLink(**fields)
        except ValueError:  # pydantic's ValidationError: an identifier topics would refuse
            return None

    def _first(self, key: Key, what: str, sent_at: float,
               seen: set[tuple[str, str, str]]) -> float:
        """When ``what`` of AGV ``key`` was first seen unacknowledged (``sent_at`` now)."""
        mark = (*key, what)
        seen.add(mark)
        return self._since.setdefault(mark, sent_at)

