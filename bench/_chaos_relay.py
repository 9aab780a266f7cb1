"""A TCP relay on loopback for the chaos run's bridge: the facility broker's bridges connect
to it, it forwards the bytes to the cloud broker, and ``cut`` severs the link.

A cut closes every relayed connection on both sides at once (no MQTT DISCONNECT: to either
broker the peer just vanished) and, until it ends, accepts new connections only to close
them at once — to the bridge, the cloud is unreachable. The relay runs its own asyncio loop
in a daemon thread; ``start``/``cut``/``stop`` are called from any other thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

__all__ = ["Relay"]

_CHUNK = 65536


class Relay:
    """Forward ``127.0.0.1:port`` to ``target_host:target_port``; cut it on demand."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        """The port it listens on (set by ``start``)."""
        self.connections = 0
        """Connections relayed so far (refused ones during a cut not counted)."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="chaos-relay",
                                        daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._cut_until = 0.0

    def start(self, port: int = 0) -> int:
        """Listen on ``port`` (0: any free one); returns the port."""
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", port), self._loop).result(10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def cut(self, seconds: float) -> int:
        """Drop every relayed connection and refuse new ones for ``seconds``; returns how
        many connections were dropped."""
        self._cut_until = time.monotonic() + seconds
        return asyncio.run_coroutine_threadsafe(self._drop_all(), self._loop).result(10)

    @property
    def is_cut(self) -> bool:
        """Whether a cut is in force right now."""
        return time.monotonic() < self._cut_until

    def stop(self) -> None:
        """Close everything and end the loop's thread."""
        if not self._thread.is_alive():
            return

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            await self._drop_all()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _drop_all(self) -> int:
        writers = list(self._writers)
        for w in writers:
            _abort(w)
        self._writers.clear()
        return len(writers) // 2

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_cut:
            _abort(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _abort(writer)  # the cloud broker is down (a restart): the bridge retries
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        for w in (writer, up_writer):
            self._writers.discard(w)
            _abort(w)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy until either side ends; then end the other side too."""
        try:
            while data := await reader.read(_CHUNK):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            _abort(writer)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close at once, without waiting for buffered bytes (a cut, not a goodbye)."""
    with contextlib.suppress(Exception):
        writer.transport.abort()
