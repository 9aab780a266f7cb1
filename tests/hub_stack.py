"""The real stack the hub API tests run against (no test here: fixtures and helpers).

One Mosquitto on a free port, three ``fleetflow edge`` processes (facilities ``fa``, ``fb``
and ``fc``), two simulated fitters in ``fc`` (so sync points can be reached; ``fc`` runs
nothing else, as a step no agent can take holds back later ones), and one ``fleetflow hub``
process serving the API on a free port, with one token per role in its token file. Every
process is stopped at the end of the module that uses it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import free_port, run_mosquitto

from agents_sim.native import AgentSpec, FleetRunner
from cloud_hub import TokenStore

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
ROLES = ("viewer", "supervisor", "planner", "admin")
FACILITIES = ("fa", "fb", "fc")
TEMPLATES = {
    # No robot has `lift`: a workflow of it waits for an agent, live, as long as a test needs.
    "api_pick.yaml": """\
name: api_pick
steps:
  - id: fetch
    kind: robot
    capabilities: [lift]
    location: p1
    estimated_duration_s: 5
  - id: deliver
    kind: robot
    capabilities: [lift]
    location: pack
    after: [fetch]
""",
    # A fitter walks to the barrier; nobody can carry, so the barrier stays open.
    "api_meet.yaml": """\
name: api_meet
steps:
  - id: walk
    kind: human
    capabilities: [fitter]
    location: pack
    estimated_duration_s: 1
  - id: carry
    kind: human
    capabilities: [forklift]
    location: pack
  - id: meet
    kind: sync
    participants: [walk, carry]
    location: pack
""",
}


@dataclass
class Stack:
    """The running stack: where the API is, and a token per role."""

    url: str
    mqtt_port: int
    data: Path
    tokens: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    args: dict[str, list[str]] = field(default_factory=dict)

    def stop(self, name: str) -> None:
        """Stop process ``name`` (an edge's facility, or ``hub``) with SIGTERM."""
        _stop(self.procs[name])

    def start(self, name: str) -> None:
        """Start process ``name`` again, with the same arguments and data."""
        self.procs[name] = _spawn(self.args[name], self.logs[name])

    def client(self, role: str | None = "admin", **headers: str) -> httpx.Client:
        """An HTTP client of the API as ``role`` (``None``: no token)."""
        if role is not None:
            headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)

    def output(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([PYTHON, "-m", "fleetflow", *args], cwd=ROOT, stdout=out,
                                stderr=out)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(check: Callable[[], Any], timeout: float = 20.0,
             what: str | Callable[[], str] = "condition") -> Any:
    """Poll ``check`` until it returns something true; that value (or fail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (httpx.HTTPError, OSError):
            value = None
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what() if callable(what) else what}")


def run_stack(tmp: Path, mosquitto_bin: str, *,
              facilities: tuple[str, ...] = FACILITIES,
              templates_text: dict[str, str] | None = None,
              edge_flags: dict[str, list[str]] | None = None) -> Iterator[Stack]:
    """Start everything; yield the ``Stack``; stop everything. ``facilities`` and
    ``templates_text`` (file name → YAML) replace the default three edges and templates
    (the fitters join ``fc`` only when it is one of them); ``edge_flags`` adds flags to
    one facility's ``fleetflow edge`` (e.g. ``{"fb": ["--vda"]}``). The hub serves the
    edges' map (``--maps``)."""
    templates = tmp / "templates"
    templates.mkdir()
    for name, text in (TEMPLATES if templates_text is None else templates_text).items():
        (templates / name).write_text(text)
    with ExitStack() as stack:
        mqtt_port = stack.enter_context(run_mosquitto(mosquitto_bin, tmp))
        broker = f"mqtt://127.0.0.1:{mqtt_port}"
        hub_data = tmp / "hub"
        hub_data.mkdir()
        store = TokenStore.in_dir(hub_data)
        tokens = {role: store.create(f"{role}-user", role) for role in ROLES}
        api_port = free_port()
        s = Stack(f"http://127.0.0.1:{api_port}", mqtt_port, hub_data, tokens)
        for f in facilities:
            s.logs[f] = tmp / f"edge-{f}.log"
            s.args[f] = ["edge", "--facility", f, "--broker", broker, "--data",
                         str(tmp / f"edge-{f}"), "--templates", str(templates), "--map",
                         str(ROOT / "maps" / "demo.yaml"), *(edge_flags or {}).get(f, [])]
        s.logs["hub"] = tmp / "hub.log"
        s.args["hub"] = ["hub", "--broker", broker, "--data", str(hub_data), "--port",
                         str(api_port), "--templates", str(templates), "--command-timeout", "5",
                         "--maps", str(ROOT / "maps" / "demo.yaml")]
        for name in s.args:
            s.start(name)
            stack.callback(s.stop, name)  # its latest process, after a restart too
        if "fc" in facilities:
            fleet = FleetRunner("fc", [AgentSpec(f"fitter{i}", "human", ("fitter",),
                                                 node="pack", state_period_s=0.5, speed=20.0)
                                       for i in (1, 2)], port=mqtt_port)
            fleet.start()
            stack.callback(fleet.stop)

        def ready() -> bool:
            r = httpx.get(f"{s.url}/health", timeout=2)
            return r.status_code == 200 and r.json()["online"] == len(facilities)

        wait_for(ready, 30, lambda: f"the hub to see {facilities} online:\n{_tail(s)}")
        yield s


def _tail(s: Stack) -> str:
    return "\n".join(f"--- {n}\n{s.output(n)[-2000:]}" for n in s.logs if s.logs[n].exists())


def create(client: httpx.Client, facility: str = "fa", template: str = "api_pick",
           **extra: Any) -> str:
    """Create a workflow through the API (strong); its id."""
    r = client.post("/api/v1/workflows", json={"facility": facility, "template": template,
                                               **extra})
    assert r.status_code == 201, r.text
    return str(r.json()["args"]["workflow_id"])
