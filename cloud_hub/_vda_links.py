"""The edges' VDA 5050 link health (``edge/vda``): the latest ``VdaLinks`` of each facility,
kept in memory with the hub time it came, and served by ``GET /facilities/{id}/vda``.

It is a status, like ``edge/status``: volatile (not stored, not in the hub's event log,
gone with a restart until the edge's retained message comes again), counted by the edge
since it started. The worker thread ``take`` s each message; API threads read copies
(``out``): the map is replaced whole, never changed in place.

Refused (logged, counted by reason in ``stats``, nothing changed): a payload that does not
decode (the codec's reason: ``malformed``, ``schema``, ``too_large`` …), one whose
``facility`` is not the topic's (``facility_mismatch``), and one of a facility the hub has
not heard of (``unknown_facility``: no edge of it reported its status or events — the hub
subscribes to ``edge/status`` before ``edge/vda``, so a retained status comes first). An
empty payload is how MQTT clears a retained message: it forgets the facility's links.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from cloud_hub._model import FacilityOut
from cloud_hub._service import NotFound
from cloud_hub._vda_model import VdaAgvErrorOut, VdaLinkOut, VdaLinksOut
from topics import ProtocolError, VdaLinks, decode_vda_links

__all__ = ["VdaKeeper", "links_out"]

_log = logging.getLogger("fleetflow.hub")


@dataclass(frozen=True, slots=True)
class _Seen:
    """One facility's latest message, as the API serves it, and when it came."""

    out: VdaLinksOut
    """Built once on arrival (``edge_online`` and ``age_s`` are set on reading)."""
    received_at: float
    """The hub's clock."""


def links_out(links: VdaLinks, received_at: float) -> VdaLinksOut:
    """The API's view of a decoded message (``age_s``, ``edge_online`` set on reading)."""
    return VdaLinksOut(
        facility=links.facility, left_out=links.left_out, ts=links.ts,
        received_at=received_at,
        links=[VdaLinkOut(**{**link.model_dump(exclude={"errors"}),
                             "errors": [VdaAgvErrorOut(**e.model_dump()) for e in link.errors]})
               for link in links.links])


class VdaKeeper:
    """The latest ``VdaLinks`` per facility; written by the worker, read by anyone."""

    def __init__(self) -> None:
        self._latest: dict[str, _Seen] = {}
        """Copy-on-write: replaced whole by ``take`` (readers never see it change)."""
        self.received = 0
        """Messages taken."""
        self.refused: Counter[str] = Counter()
        """Messages refused, by reason."""

    def take(self, facility: str, payload: bytes, now: float, *, known: bool) -> str | None:
        """Keep ``payload`` (from ``fleetflow/v1/{facility}/edge/vda``) as ``facility``'s
        latest; ``known``: the hub has heard of that facility. Why it was refused, or None.
        Never raises: a bad message is logged and counted, and changes nothing."""
        if not known:
            why, detail = "unknown_facility", f"no edge of facility {facility!r} has reported"
        elif not payload:  # the retained message was cleared
            self._latest = {f: s for f, s in self._latest.items() if f != facility}
            self.received += 1
            return None
        else:
            try:
                links = decode_vda_links(payload)
            except ProtocolError as exc:
                why, detail = exc.reason or "malformed", str(exc)
            else:
                if links.facility != facility:
                    why, detail = "facility_mismatch", (
                        f"the message is of facility {links.facility!r}")
                else:
                    self._latest = {**self._latest, facility: _Seen(links_out(links, now), now)}
                    self.received += 1
                    return None
        self.refused[why] += 1
        _log.info("hub refused a VDA 5050 link report on facility %s's edge/vda (%s): %s",
                  facility, why, detail[:300])
        return why

    def out(self, facility: str, seen: FacilityOut | None, now: float) -> VdaLinksOut:
        """``facility``'s links for the API; ``seen`` is its facility view (``NotFound`` if
        the hub has none)."""
        if seen is None:
            raise NotFound(f"unknown facility {facility!r}: no edge of that id has reported "
                           "to the hub")
        kept = self._latest.get(facility)
        if kept is None:
            return VdaLinksOut(facility=facility, edge_online=seen.online)
        return kept.out.model_copy(update={
            "edge_online": seen.online, "age_s": round(max(0.0, now - kept.received_at), 3)})

    def stats(self) -> dict[str, object]:
        """For ``system_stats``: messages taken, refused by reason, facilities kept."""
        return {"received": self.received, "refused": dict(self.refused),
                "facilities": len(self._latest)}
