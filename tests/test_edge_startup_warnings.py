"""A real `fleetflow edge` says at start what it loaded (templates, map, VDA 5050 mode) and
warns about template locations off its map and agents nobody can be (docs/edge.md,
"Start-up log")."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from broker import stop_process

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
DEMO_MAP = ROOT / "maps" / "demo.yaml"
TEMPLATE = """\
name: weld
version: 2
steps:
  - {id: fetch, kind: robot, capabilities: [transport], location: dock}
  - {id: weld, kind: human, after: [fetch], capabilities: [welding], location: bay_9}
"""


def _edge_log(tmp_path: Path, port: int, *flags: str) -> str:
    """Start an edge with ``flags``, wait until it says it started, stop it; its log."""
    templates = tmp_path / "templates"
    templates.mkdir(exist_ok=True)
    (templates / "weld.yaml").write_text(TEMPLATE)
    log_path = tmp_path / "edge.log"
    with open(log_path, "wb") as log:
        edge = subprocess.Popen(
            [PYTHON, "-m", "fleetflow", "edge", "--facility", "f1", "--broker",
             f"mqtt://127.0.0.1:{port}", "--data", str(tmp_path / "data"),
             "--templates", str(templates), "--metrics-port", "0", *flags],
            cwd=tmp_path, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while " started at seq " not in log_path.read_text():
            assert edge.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
    finally:
        stop_process(edge, 10)
    return log_path.read_text()


def _lines(log: str, level: str) -> list[str]:
    return [line.split(f" {level} ", 1)[1] for line in log.splitlines() if f" {level} " in line]


def test_edge_logs_what_it_loaded_and_warns_about_what_does_not_fit(
        mosquitto_port: int, tmp_path: Path) -> None:
    """With --vda on the demo map: the templates, map and VDA mode are logged; the location
    off the map and the capability no known agent has are one WARNING line each."""
    log = _edge_log(tmp_path, mosquitto_port, "--map", str(DEMO_MAP), "--vda",
                    "--vda-capabilities", "transport")
    info = _lines(log, "INFO")
    assert f"templates: 1 from {tmp_path / 'templates'}: weld@2" in info
    assert f"map: {DEMO_MAP} (map demo_floor, 21 nodes)" in info
    assert "VDA 5050: on (every AGV joins as a robot with capabilities transport)" in info
    assert _lines(log, "WARNING") == [
        f"template weld@2: step weld: location bay_9 is not on map demo_floor ({DEMO_MAP})",
        "template weld@2: step weld: no human agent has capabilities welding",
    ]


def test_edge_before_any_agent_joined_says_so_once(mosquitto_port: int, tmp_path: Path) -> None:
    """Without a map, VDA or any agent: no warning per capability, one line saying why."""
    log = _edge_log(tmp_path, mosquitto_port)
    info = _lines(log, "INFO")
    assert "VDA 5050: off" in info
    assert any(line.startswith("map: none (no --map)") for line in info)
    assert sum("no agent has joined yet" in line for line in info) == 1
    assert _lines(log, "WARNING") == []
