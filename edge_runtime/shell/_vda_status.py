"""The edge's ``edge/vda`` status: the health of its VDA 5050 links, published retained.

A status, not events (docs/decisions.md, "edge/vda: a status topic beside design §8's"):
nothing here is committed. Once a second, where the loop ticks the VDA master, ``due``
gives the ``VdaLinks`` to publish (QoS 1, retained) if it differs from the last one
published, ``ts`` aside, or the edge reconnected since (a broker that lost its retained
messages gets it again). While an order or instant action waits for an acknowledgement its
age changes each second, and so the message does. paho queues the publish: the loop never
waits on it.

On a clean stop the retained message stays: the hub tells an edge online by ``edge/status``,
and the last link health of a stopped edge is what it was.
"""

from __future__ import annotations

import logging

from edge_runtime.vda5050 import VdaBridge, VdaHealth
from topics import ProtocolError, VdaLinks, VdaTopic, edge_topic, parse_topic

__all__ = ["VdaStatus"]

_log = logging.getLogger("fleetflow.edge")

Out = tuple[str, bytes | None, int, bool]
"""(topic, payload, qos, retain), as in ``Batch.out``."""


class VdaStatus:
    """Counts refused AGV messages and publishes the link health when it changed."""

    def __init__(self, facility: str, bridge: VdaBridge) -> None:
        self.bridge = bridge
        """The VDA master (and its bridge) whose links are reported."""
        self.health = VdaHealth(facility)
        """The sans-IO builder, with the refused-message counters."""
        self.topic = edge_topic(facility, "vda")
        """``fleetflow/v1/{facility}/edge/vda``."""
        self._last: tuple[int, VdaLinks] | None = None
        """(link session, message without ``ts``) last published."""

    def refused(self, topic: str) -> None:
        """The edge refused a message on ``topic``: count it if it is an AGV's."""
        try:
            parsed = parse_topic(topic, interface=self.bridge.master.interface)
        except ProtocolError:
            return  # no AGV to count it for
        if isinstance(parsed, VdaTopic):
            self.health.refused(parsed.manufacturer, parsed.serial_number)

    def due(self, now: float, session: int) -> list[Out]:
        """The retained ``edge/vda`` message to publish now, if any (``session``: the
        broker link's connection count)."""
        try:
            links, payload = self.health.links(self.bridge.master, now)
        except Exception:  # a status must never stop the loop that commits events
            _log.exception("cannot make the VDA 5050 link health")
            return []
        bare = links.model_copy(update={"ts": 0.0})
        if self._last == (session, bare):
            return []
        self._last = (session, bare)
        return [(self.topic, payload, 1, True)]
