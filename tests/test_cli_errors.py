"""CLI errors that say what to do: one line on stderr, exit status 2, naming the option, the
port or the file to fix — misspelt options, taken ports, log levels, ``FLEETFLOW_DATA``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict[str, str] | None = None,
        cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """``python -m fleetflow ARGS``, its output captured."""
    return subprocess.run([sys.executable, "-m", "fleetflow", *args], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def one_line_exit_2(r: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line of a refused command (exit 2, no traceback, nothing on stdout)."""
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    return r.stderr.strip()


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize(("argv", "says"), [
    (["broker", "--prot", "28884"],
     "fleetflow broker: unknown option --prot (did you mean --port?)"),
    (["edge", "--facilty", "t1"],
     "fleetflow edge: unknown option --facilty (did you mean --facility?)"),
    (["hub", "--templats", "x"],
     "fleetflow hub: unknown option --templats (did you mean --templates?)"),
    (["up", "--agnets", "3"], "fleetflow up: unknown option --agnets (did you mean --agents?)"),
    (["broker", "passwd", "add", "x", "--rloe", "hub"],
     "fleetflow broker passwd add: unknown option --rloe (did you mean --role?)"),
])
def test_a_misspelt_option_names_the_closest(argv: list[str], says: str) -> None:
    """A misspelt option is named with the closest known one, not a sub-command's error."""
    assert one_line_exit_2(cli(*argv)) == says


def test_an_unknown_command_or_bad_value_is_one_line() -> None:
    """argparse's own errors (bad choice, missing argument) are one line, no usage block."""
    line = one_line_exit_2(cli("bogus"))
    assert line.startswith("fleetflow: ") and "'bogus'" in line
    line = one_line_exit_2(cli("broker", "passwd", "add", "x"))
    assert "--role" in line


@pytest.mark.parametrize("spelling", ["debug", "DEBUG", "Info", "warning", "ERROR"])
def test_log_level_is_one_spelling_in_any_case(spelling: str) -> None:
    """Every command takes debug|info|warning|error in any case."""
    from fleetflow.__main__ import build_parser

    parser = build_parser()
    for argv in (["edge"], ["hub"], ["broker"]):
        args = parser.parse_args([*argv, "--log-level", spelling])
        assert args.log_level == spelling.upper()


def test_a_bad_log_level_is_one_line() -> None:
    """A log level not in the list is refused in one line naming the flag and the choices."""
    for command in ("edge", "hub", "broker"):
        line = one_line_exit_2(cli(command, "--log-level", "verbose"))
        assert "--log-level" in line and "debug, info, warning, error" in line


def _edge_debug_log(tmp_path: Path, debug_cel: str) -> str:
    """What an edge at --log-level debug logs until it first fails to reach a broker."""
    log = tmp_path / f"edge-{debug_cel}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleetflow", "edge", "--facility", "f1", "--broker",
             "mqtt://127.0.0.1:9", "--data", str(tmp_path / f"d{debug_cel}"),
             "--log-level", "debug"], cwd=REPO, stdin=subprocess.DEVNULL, stdout=out,
            stderr=out, env={**os.environ, "FLEETFLOW_DEBUG_CEL": debug_cel})
    try:
        deadline = time.monotonic() + 30
        while "cannot reach broker" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return log.read_text()


def test_debug_logs_keep_the_cel_library_quiet(tmp_path: Path) -> None:
    """At DEBUG the CEL library (celpy) stays at WARNING — its DEBUG lines are whole parse
    trees — unless FLEETFLOW_DEBUG_CEL=1."""
    quiet = _edge_debug_log(tmp_path, "0")
    assert "cannot reach broker" in quiet
    assert "InterpretedRunner" not in quiet
    assert "InterpretedRunner" in _edge_debug_log(tmp_path, "1")


def test_edge_metrics_port_in_use_names_the_flag(busy_port: int, tmp_path: Path) -> None:
    """A taken --metrics-port: one line naming the flag and the port, and that 0 turns it off."""
    line = one_line_exit_2(cli("edge", "--facility", "t1", "--data", str(tmp_path / "d"),
                               "--metrics-port", str(busy_port)))
    assert line == (f"fleetflow edge: --metrics-port {busy_port} is in use on 127.0.0.1 "
                    "(pick another or 0; env FLEETFLOW_METRICS_PORT)")
    assert not (tmp_path / "d").exists()


def test_hub_port_in_use_names_the_flag(busy_port: int, tmp_path: Path) -> None:
    """A taken hub --port: one line naming the flag and the port; no store made."""
    line = one_line_exit_2(cli("hub", "--port", str(busy_port), "--data", str(tmp_path / "h")))
    assert line.startswith(f"fleetflow hub: --port {busy_port} is in use on 127.0.0.1")
    assert not (tmp_path / "h").exists()


def test_dashboard_port_in_use_names_the_flag(busy_port: int) -> None:
    """A taken dashboard --port: the same wording."""
    line = one_line_exit_2(cli("dashboard", "--port", str(busy_port), "--token", "t"))
    assert line.startswith(f"fleetflow dashboard: --port {busy_port} is in use on 127.0.0.1")


def test_broker_port_in_use_comes_before_the_dev_banner(busy_port: int) -> None:
    """With --allow-anonymous-dev too, a taken --port is the only line printed."""
    line = one_line_exit_2(cli("broker", "--port", str(busy_port), "--allow-anonymous-dev"))
    assert line.startswith(f"fleetflow broker: --port {busy_port} is in use")


def test_fleetflow_data_is_the_root_for_broker_users_and_hub_tokens(tmp_path: Path) -> None:
    """FLEETFLOW_DATA is the data root: the broker's users in DATA/passwd, the hub's tokens
    in DATA/hub, as `fleetflow up` lays them out."""
    env = {"FLEETFLOW_DATA": str(tmp_path), "FLEETFLOW_BROKER_PASSWD": "",
           "FLEETFLOW_HUB_DATA": ""}
    r = cli("broker", "passwd", "add", "hub", "--role", "hub", "--password", "pw", env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "passwd").is_file()
    r = cli("hub", "token", "create", "--name", "ops", "--role", "viewer", env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "hub" / "tokens.json").is_file()


def test_fleetflow_data_is_the_root_of_the_edge_store(tmp_path: Path) -> None:
    """Without --data the edge's store is DATA/edge-FACILITY under FLEETFLOW_DATA."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetflow", "edge", "--facility", "f1",
         "--broker", "mqtt://127.0.0.1:9", "--log-level", "error"], cwd=REPO,
        env={**os.environ, "FLEETFLOW_DATA": str(tmp_path)}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "edge-f1" / "store").exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        assert (tmp_path / "edge-f1" / "store").is_dir()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_vda_agv_module_starts_without_a_runpy_warning() -> None:
    """`python -m agents_sim.vda_agv` prints no RuntimeWarning (warnings as errors)."""
    r = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m",
                        "agents_sim.vda_agv", "--help"], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "Warning" not in r.stderr, r.stderr
