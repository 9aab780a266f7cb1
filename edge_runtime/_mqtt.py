"""The edge's MQTT client: paho's, reading the socket in large chunks.

Stock paho reads every packet with at least three ``recv`` calls (command byte, length
bytes, body) and handles one packet per ``select``. Each of those system calls drops and
retakes the GIL, which the edge's batch loop wants at the same time: under a flood of
small messages the network thread spent most of its time waiting to get the GIL back
(docs/benchmarks-e2e.md). This client fills a buffer with one ``recv`` of up to 64 KiB and
hands paho the bytes it asks for from there, then keeps parsing until the buffer is empty.
The protocol handling (acks, keepalive, reconnects, TLS) is paho's own, unchanged.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

__all__ = ["BufferedClient"]

_READ_SIZE = 65536
"""Bytes asked of the socket per ``recv``."""
_DRAIN_MIN = 1024
"""Packets parsed per wake-up before the client may go back to ``select`` (once its buffer
is empty: ``select`` knows nothing of bytes already read)."""
_WRITE_EVERY = 64
"""While draining, queued outgoing packets are written this often (publishes and acks of
the batch loop do not wait for the whole drain)."""


class BufferedClient(mqtt.Client):
    """``paho.mqtt.client.Client`` with buffered socket reads (same API, same behaviour)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = b""
        self._rpos = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        pos = self._rpos
        if pos >= len(self._rbuf):
            # Empty: one real recv (paho's, with its TLS and error handling).
            data = super()._sock_recv(max(bufsize, _READ_SIZE))
            self._rbuf = data
            self._rpos = min(bufsize, len(data))
            return data if len(data) <= bufsize else data[:bufsize]
        end = pos + bufsize
        self._rpos = end
        return self._rbuf[pos:end]

    def _sock_close(self) -> None:
        # Bytes of a dead connection must not be parsed as the start of the next one.
        self._rbuf, self._rpos = b"", 0
        super()._sock_close()

    def _buffered(self) -> bool:
        return self._rpos < len(self._rbuf)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Parse packets until the socket has nothing more (paho's parses one per call)."""
        count = 0
        while True:
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                if self._buffered():  # paho stops a long body after 100 reads
                    continue
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            count += 1
            if count % _WRITE_EVERY == 0 and self.want_write():
                rc = self.loop_write()
                if rc or self._sock is None:
                    return rc
            if count >= _DRAIN_MIN and not self._buffered():
                return MQTTErrorCode.MQTT_ERR_SUCCESS
