"""The processes of the chaos run: two Mosquitto brokers bridged through a relay, one
``fleetflow edge`` per facility and the ``fleetflow hub``, each a real child process that
the fault injector may kill, stop and start again on the same port and data.

Users and configs are made as an operator makes them: ``PasswordFile`` users (edges, the
bridge users and the hub on the cloud broker, one admin user for the simulated fleet on the
facility broker) and ``fleetflow broker mosquitto-config`` for both brokers, the facility
broker's with one bridge per facility to the relay (``bench._chaos_relay``). Every process
is started from the calling (main) thread: ``die_with_parent`` ties a child to the thread
that forked it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench._chaos_relay import Relay
from broker import (
    Identity,
    PasswordFile,
    die_with_parent,
    find_mosquitto,
    free_port,
    mqtt_ready,
    stop_process,
)
from cloud_hub import TokenStore

__all__ = ["ROOT", "ChaosRig", "Proc"]

ROOT = Path(__file__).resolve().parent.parent
SIM_USER = "chaos-sim"
"""The simulated fleet's user on the facility broker (admin: one login for every agent)."""


@dataclass
class Proc:
    """One child process, started again with the same arguments after a kill or stop."""

    name: str
    args: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        """Start it (again); its output is appended to ``log``."""
        with open(self.log, "ab") as out:
            out.write(f"--- start {self.starts + 1} at {time.time():.3f}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(self.args, cwd=ROOT, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=out, env={**os.environ, **self.env},
                                         preexec_fn=die_with_parent)
        self.starts += 1

    @property
    def running(self) -> bool:
        """Started and not exited."""
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL, and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (SIGKILL after ``timeout``); its exit status, None if never started."""
        return None if self.proc is None else stop_process(self.proc, timeout)

    def tail(self, chars: int = 1500) -> str:
        """The end of its log."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _python(*args: str) -> list[str]:
    return [sys.executable, "-m", "fleetflow", *args]


class ChaosRig:
    """Cloud broker, relay, facility broker, hub and edges under ``root``."""

    def __init__(self, root: Path, facilities: tuple[str, ...], templates: Path,
                 map_path: Path, edge_flags: dict[str, list[str]]) -> None:
        self.root, self.facilities = root, facilities
        self.templates, self.map_path = templates, map_path
        self.sim_password = secrets.token_urlsafe(12)
        self.cloud_port, self.facility_port, self.api_port = free_port(), free_port(), free_port()
        self.relay = Relay("127.0.0.1", self.cloud_port)
        self.hub_data = root / "hub"
        self.hub_token = ""
        self.procs: dict[str, Proc] = {}
        self._edge_flags = edge_flags

    # --- setup ---------------------------------------------------------------------------

    def edge_data(self, facility: str) -> Path:
        """The edge's store directory."""
        return self.root / f"edge-{facility}"

    def _configure(self) -> None:
        """Users, broker configs (``mosquitto-config``) and the hub's token."""
        # Mosquitto run as root drops to the user `mosquitto`, which must reach its dirs.
        self.root.chmod(0o755)
        pw = {name: secrets.token_urlsafe(12) for name in
              ["hub", *(f"edge-{f}" for f in self.facilities),
               *(f"bridge-{f}" for f in self.facilities)]}
        cloud = PasswordFile(self.root / "cloud-users")
        cloud.add(Identity("hub", "hub"), pw["hub"], iterations=100)
        site = PasswordFile(self.root / "facility-users")
        site.add(Identity(SIM_USER, "admin"), self.sim_password, iterations=100)
        for f in self.facilities:
            cloud.add(Identity(f"bridge-{f}", "edge", facility=f), pw[f"bridge-{f}"],
                      iterations=100)
            site.add(Identity(f"edge-{f}", "edge", facility=f), pw[f"edge-{f}"],
                     iterations=100)
        relay_port = self.relay.start()
        bridges = [x for f in self.facilities for x in
                   ("--facility", f, "--bridge-user", f"bridge-{f}",
                    "--bridge-password", pw[f"bridge-{f}"])]
        for name, users, port, extra in (
                ("cloud", cloud, self.cloud_port, []),
                ("facility", site, self.facility_port,
                 ["--bridge-to", f"127.0.0.1:{relay_port}", *bridges])):
            out = subprocess.run(
                _python("broker", "mosquitto-config", str(self.root / name), "--passwd",
                        str(users.path), "--listen", "127.0.0.1", "--port", str(port), *extra),
                cwd=ROOT, capture_output=True, text=True, timeout=60)
            if out.returncode != 0:
                raise RuntimeError(f"mosquitto-config {name}: {out.stderr.strip()}")
        binary = find_mosquitto()
        if binary is None:
            raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto)")
        for name in ("cloud", "facility"):
            conf = self.root / name / "mosquitto.conf"
            self.procs[name] = Proc(name, [binary, "-c", str(conf)], self.root / f"{name}.log")
        self.hub_data.mkdir()
        self.hub_token = TokenStore.in_dir(self.hub_data).create("chaos", "admin")
        self.procs["hub"] = Proc("hub", _python(
            "hub", "--broker", f"mqtt://127.0.0.1:{self.cloud_port}", "--username", "hub",
            "--data", str(self.hub_data), "--templates", str(self.templates), "--port",
            str(self.api_port), "--maps", str(self.map_path), "--command-timeout", "5",
            "--log-level", "warning"), self.root / "hub.log", {"FLEETFLOW_HUB_PASSWORD":
                                                               pw["hub"]})
        for f in self.facilities:
            self.procs[f] = Proc(f, _python(
                "edge", "--facility", f, "--broker", f"mqtt://127.0.0.1:{self.facility_port}",
                "--username", f"edge-{f}", "--data", str(self.edge_data(f)), "--templates",
                str(self.templates), "--map", str(self.map_path), "--metrics-port", "0",
                "--log-level", "warning", *self._edge_flags.get(f, [])),
                self.root / f"edge-{f}.log", {"FLEETFLOW_EDGE_PASSWORD": pw[f"edge-{f}"]})

    def start(self, timeout: float = 60.0) -> None:
        """Configure and start everything; return when the hub sees every edge online."""
        self._configure()
        for name in ("cloud", "facility"):
            self.start_broker(name)
        self.procs["hub"].start()
        for f in self.facilities:
            self.procs[f].start()
        deadline = time.monotonic() + timeout
        while not self._all_online():
            for p in self.procs.values():
                if not p.running:
                    raise RuntimeError(f"{p.name} exited at start:\n{p.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError("the hub did not see every edge online:\n"
                                   + self.procs["hub"].tail())
            time.sleep(0.2)

    # --- what the faults do --------------------------------------------------------------

    def start_broker(self, name: str, timeout: float = 15.0) -> None:
        """Start broker ``name`` (``cloud`` or ``facility``) and wait until it answers."""
        port = self.cloud_port if name == "cloud" else self.facility_port
        p = self.procs[name]
        p.start()
        deadline = time.monotonic() + timeout
        while not mqtt_ready("127.0.0.1", port):
            if not p.running or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto {name} did not start on {port}:\n{p.tail()}")
            time.sleep(0.05)

    def restart_broker(self, name: str, pause_s: float) -> None:
        """Stop broker ``name`` (SIGTERM: it saves its persistence), wait, start it again."""
        self.procs[name].stop()
        time.sleep(pause_s)
        self.start_broker(name)

    def kill_and_restart(self, name: str, pause_s: float) -> None:
        """kill -9 of the edge or hub ``name``, then a new process after ``pause_s``."""
        self.procs[name].kill9()
        time.sleep(pause_s)
        self.procs[name].start()

    # --- reading the hub -----------------------------------------------------------------

    @property
    def hub_url(self) -> str:
        """The hub API's base URL."""
        return f"http://127.0.0.1:{self.api_port}"

    def hub_facilities(self) -> dict[str, dict[str, Any]]:
        """``GET /api/v1/facilities`` by facility id (empty if the hub does not answer)."""
        try:
            r = httpx.get(f"{self.hub_url}/api/v1/facilities", timeout=5,
                          headers={"Authorization": f"Bearer {self.hub_token}"})
        except httpx.HTTPError:
            return {}
        if r.status_code != 200:
            return {}
        body = r.json()
        items = body.get("items", body) if isinstance(body, dict) else body
        return {str(f["id"]): f for f in items}

    def _all_online(self) -> bool:
        seen = self.hub_facilities()
        return all(seen.get(f, {}).get("online") for f in self.facilities)

    # --- the end -------------------------------------------------------------------------

    def stop_edges(self) -> dict[str, int | None]:
        """Stop every edge gracefully (SIGTERM); facility -> exit status."""
        return {f: self.procs[f].stop(timeout=60) for f in self.facilities}

    def close(self) -> None:
        """Stop every process (edges first, brokers last) and the relay."""
        for name in (*self.facilities, "hub", "facility", "cloud"):
            p = self.procs.get(name)
            if p is not None:
                p.stop()
        self.relay.stop()

    def remove(self) -> None:
        """Delete the run's directory."""
        shutil.rmtree(self.root, ignore_errors=True)
