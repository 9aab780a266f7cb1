"""What the lending tests share: an MQTT test client that is one agent in several
facilities, and the hub's API served by uvicorn on a free port for an in-process hub."""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from bench.wire import Wire
from broker import free_port
from cloud_hub import Hub, TokenStore, create_app
from topics import (
    AgentCommand,
    AgentConn,
    AgentState,
    Assign,
    Cancel,
    CommandAck,
    agent_topic,
    decode,
    encode,
)

ROLES = ("viewer", "supervisor", "planner", "admin")


class SharedAgent:
    """One robot with ``lift`` that says hello in several facilities over one MQTT client
    and confirms every command it is sent (it never finishes a step: what it holds stays
    held until a facility takes it back)."""

    def __init__(self, port: int, agent_id: str, facilities: tuple[str, ...]) -> None:
        self.id, self.facilities = agent_id, facilities
        self.wire = Wire(port, f"shared-{agent_id}",
                         [(agent_topic(f, agent_id, "cmd"), 1) for f in facilities])
        self.cancels: list[tuple[str, str, str]] = []
        """(facility, workflow, step) of each cancel it confirmed."""
        self._n = itertools.count(1)
        self._running = True
        self._thread = threading.Thread(target=self._answer, daemon=True)
        self._thread.start()
        for f in facilities:
            self.wire.publish(agent_topic(f, agent_id, "conn"), encode(AgentConn(
                agent_id=agent_id, online=True, kind="robot", capabilities=["lift"],
                liveness_s=600)), qos=1)
            self.wire.publish(agent_topic(f, agent_id, "state"), encode(AgentState(
                agent_id=agent_id, ts=time.time(), node="dock")), qos=1)

    def _answer(self) -> None:
        while self._running:
            try:
                topic, payload, _ = self.wire.inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            facility = topic.split("/")[2]  # fleetflow/v1/<facility>/agent/<id>/cmd
            cmd = decode(payload, AgentCommand)
            if isinstance(cmd, Cancel):
                self.cancels.append((facility, cmd.workflow_id, cmd.step_id))
            if isinstance(cmd, Assign | Cancel):
                self.wire.publish(agent_topic(facility, self.id, "event"), encode(CommandAck(
                    event_id=f"{self.id}-{next(self._n)}", agent_id=self.id, ts=time.time(),
                    command_id=cmd.command_id)), qos=1)

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2)
        self.wire.close()


@contextlib.contextmanager
def serve_api(hub: Hub, data: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The API of ``hub`` on a free port; ``(url, token per role)``; stopped on exit."""
    store = TokenStore.in_dir(data)
    tokens = {role: store.create(f"{role}-user", role) for role in ROLES}
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(hub, store, command_timeout_s=5.0),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", tokens
    finally:
        server.should_exit = True
        thread.join(10)
