"""What the hub tests share: real ``fleetflow edge`` processes per facility, simulated
native agents, a hub on a real broker, a TCP proxy that can cut the hub's link, and a
reading of an edge's projection from its own store (for "the hub's view equals the
edge's")."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from test_edge_e2e import TEMPLATE as E2E_TEMPLATE

from agents_sim.native import AgentSpec, FleetRunner
from broker import free_port
from cloud_hub import Hub, HubConfig, WorkflowOut
from cloud_hub._view import workflow_out
from edge_runtime.core import Core, decode_workflow_record
from edge_runtime.store import EventStore, store_path
from edge_runtime.templates import load_templates

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
# The edge end-to-end tests' two-step pick, under its own name.
TEMPLATE = E2E_TEMPLATE.replace("name: e2e_pick", "name: hub_pick")


def write_templates(tmp: Path) -> Path:
    """The templates directory the edges and the hub share."""
    tdir = tmp / "templates"
    tdir.mkdir(parents=True, exist_ok=True)
    (tdir / "hub_pick.yaml").write_text(TEMPLATE)
    return tdir


def wait_until(what: Callable[[], Any], timeout: float = 60.0, step: float = 0.1) -> Any:
    """Poll ``what`` until it returns something true; that value, or ``AssertionError``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = what()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"not true within {timeout} s: {getattr(what, '__name__', what)}")


class EdgeProc:
    """``fleetflow edge`` for one facility in a child process."""

    def __init__(self, facility: str, port: int, tmp: Path, templates: Path,
                 *extra: str) -> None:
        self.facility, self.port, self.templates = facility, port, templates
        self.extra = extra
        self.data = tmp / f"edge-{facility}"
        self.data.mkdir(parents=True, exist_ok=True)
        self.log = self.data / "edge.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> EdgeProc:
        cmd = [PYTHON, "-m", "fleetflow", "edge", "--facility", self.facility,
               "--broker", f"mqtt://127.0.0.1:{self.port}", "--data", str(self.data),
               "--templates", str(self.templates), "--map", str(ROOT / "maps" / "demo.yaml"),
               *self.extra]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log)
        return self

    def stop(self) -> None:
        """SIGTERM and wait: the edge publishes its offline status and releases its store."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def projection(self) -> tuple[int, dict[str, WorkflowOut]]:
        """The edge's last seq and workflows (live ones replayed from its log, archived ones
        from its own final records), read from its store: stop the edge first."""
        templates = load_templates(self.templates)
        core = Core(self.facility, templates)
        with EventStore(store_path(self.data), self.facility) as store:
            for event in store.read():
                core.apply(event)
            views = {wid: workflow_out(self.facility, v, 0)
                     for wid, v in core.workflows().items()}
            for wid in core.archived_workflows():
                raw = store.workflow_record(wid)
                assert raw is not None, f"edge {self.facility} lost the record of {wid}"
                views[wid] = workflow_out(self.facility, decode_workflow_record(raw), 0)
            return store.last_seq, views


def fleet(facility: str, port: int, n: int = 2) -> FleetRunner:
    specs = [AgentSpec(f"{facility}-r{i}", "robot", ("lift",), node="dock",
                       state_period_s=0.5, speed=20.0) for i in range(n)]
    return FleetRunner(facility, specs, port=port)


def hub_config(tmp: Path, port: int, templates: Path, **kw: Any) -> HubConfig:
    return HubConfig(data_dir=tmp / "hub", port=port, username=None, templates_dir=templates,
                     replay_retry_s=0.5, **kw)


@contextlib.contextmanager
def running_hub(config: HubConfig) -> Iterator[Hub]:
    hub = Hub(config).start()
    try:
        wait_until(lambda: hub.connected, 30)
        yield hub
    finally:
        hub.stop()


def same_view(a: WorkflowOut, b: WorkflowOut) -> bool:
    """Equal but for ``seq`` (the edge's records do not carry it)."""
    return a.model_dump(exclude={"seq"}) == b.model_dump(exclude={"seq"})


def facility_seqs(hub: Hub, facility: str) -> list[int]:
    """Every seq of ``facility`` in the hub's change feed, in feed order."""
    seqs: list[int] = []
    token: str | None = None
    while True:
        page = hub.changes(token, facility=facility, limit=1000)
        if not page:
            return seqs
        seqs.extend(c.event.seq for c in page)
        token = page[-1].token


class Proxy:
    """A TCP forwarder to the broker that can cut every connection and refuse new ones
    (``cut``) until ``heal``: a real network partition of whoever connects through it."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = free_port()
        self._open = True
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.2)
        self._running = True
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while self._running:
            try:
                client, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            if not self._open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self._open = False
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def heal(self) -> None:
        self._open = True

    def close(self) -> None:
        self._running = False
        self.cut()
        self._thread.join(timeout=2)
        self._server.close()
