"""`fleetflow broker` as a process: start, stop, port in use, dev mode, TLS, live users."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker import BrokerProcess, BrokerStartError, Identity, PasswordFile, mqtt_ready
from tests.conftest import free_port, require_tool
from tests.test_broker_enforcement import Client, password

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def passwd(tmp_path: Path) -> Path:
    """A user file with an admin ``ops`` and an agent ``a1`` of F1."""
    pf = PasswordFile(tmp_path / "passwd")
    pf.add(Identity("ops", "admin"), password("ops"), iterations=50)
    pf.add(Identity("a1", "agent", facility="F1"), password("a1"), iterations=50)
    return pf.path


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "fleetflow", "broker", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def spawn() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes to kill after the test, whatever happened."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def _wait_ready(proc: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 15
    while not mqtt_ready("127.0.0.1", port):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "broker did not come up"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signal_stops_cleanly(passwd: Path, port: int, spawn: list[subprocess.Popen[str]],
                              sig: signal.Signals) -> None:
    """SIGTERM or SIGINT stops the broker, a client still connected, with exit status 0 and
    no traceback."""
    proc = _spawn("--port", str(port), "--passwd", str(passwd))
    spawn.append(proc)
    _wait_ready(proc, port)
    client = Client(port, "a1")  # a connected client must not hold the shutdown up
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=10)
    client.close()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert f"listening on mqtt://127.0.0.1:{port}" in out


def test_port_in_use_is_one_line(passwd: Path, port: int) -> None:
    """A taken port gives exactly the one-line error and exit status 2."""
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        r = subprocess.run(
            [sys.executable, "-m", "fleetflow", "broker", "--port", str(port),
             "--passwd", str(passwd)], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        f"fleetflow broker: --port {port} is in use on 127.0.0.1 "
        "(pick another; env FLEETFLOW_BROKER_PORT)"]


def test_port_from_environment(passwd: Path, port: int, spawn: list[subprocess.Popen[str]]
                               ) -> None:
    """FLEETFLOW_BROKER_PORT picks the port when --port is absent."""
    import os

    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetflow", "broker", "--passwd", str(passwd)], cwd=REPO,
        env={**os.environ, "FLEETFLOW_BROKER_PORT": str(port)}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    spawn.append(proc)
    _wait_ready(proc, port)


def test_broker_process_reports_port_in_use(passwd: Path, port: int) -> None:
    """BrokerProcess.start raises with the broker's own one-line error."""
    with BrokerProcess("127.0.0.1", port, passwd), pytest.raises(
        BrokerStartError, match=f"--port {port} is in use on 127.0.0.1"
    ):
        BrokerProcess("127.0.0.1", port, passwd).start()


def test_missing_user_file_is_one_line(tmp_path: Path, port: int) -> None:
    """Without a user file (and without dev mode) the broker refuses to start."""
    r = subprocess.run([sys.executable, "-m", "fleetflow", "broker", "--port", str(port),
                        "--passwd", str(tmp_path / "none")],
                       cwd=REPO, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert len(r.stderr.splitlines()) == 1
    assert "no user file" in r.stderr


def test_anonymous_dev_mode(passwd: Path, port: int, spawn: list[subprocess.Popen[str]]) -> None:
    """Dev mode warns loudly, admits anonymous clients fully, still checks named users."""
    proc = _spawn("--port", str(port), "--passwd", str(passwd), "--allow-anonymous-dev")
    spawn.append(proc)
    _wait_ready(proc, port)
    anon = Client(port, None)
    assert not anon.rc.is_failure
    anon.subscribe("#")
    Client(port, "a1").publish("fleetflow/v1/F1/agent/a1/state", b"x")
    anon.publish("anything/goes", b"y")
    assert [anon.next(), anon.next()] == [
        ("fleetflow/v1/F1/agent/a1/state", b"x"), ("anything/goes", b"y")]
    assert Client(port, "a1", "wrong").rc.is_failure
    anon.close()
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    assert "ANONYMOUS DEVELOPMENT MODE" in err
    assert len([ln for ln in err.splitlines() if "WARNING" in ln or "ADMIN" in ln]) >= 2


def test_user_added_while_running_can_connect(passwd: Path, port: int) -> None:
    """`passwd add` on a running broker takes effect at the next CONNECT."""
    with BrokerProcess("127.0.0.1", port, passwd):
        assert Client(port, "late", password("late")).rc.is_failure
        PasswordFile(passwd).add(Identity("late", "hub"), password("late"), iterations=50)
        late = Client(port, "late")
        assert not late.rc.is_failure
        late.close()
        PasswordFile(passwd).remove("late")
        assert Client(port, "late").rc.is_failure


def test_persistent_session_cannot_be_taken_by_another_user(passwd: Path, port: int) -> None:
    """A user cannot resume another user's persistent session (and its queued commands)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    with BrokerProcess("127.0.0.1", port, passwd):
        owner = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="a1-session",
                            protocol=mqtt.MQTTv311, clean_session=False)
        owner.username_pw_set("a1", password("a1"))
        assert owner.connect("127.0.0.1", port) == 0
        owner.loop_start()
        time.sleep(0.2)
        owner.disconnect()
        owner.loop_stop()
        thief = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="a1-session",
                            protocol=mqtt.MQTTv311, clean_session=False)
        thief.username_pw_set("ops", password("ops"))
        got: list[int] = []
        thief.on_connect = lambda cl, u, f, rc, p: got.append(int(rc.value))
        thief.connect("127.0.0.1", port)
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            thief.loop(0.1)
        thief.disconnect()
        assert got and got[0] != 0


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl tool)."""
    openssl = require_tool("openssl", "apt-get install openssl")
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "server.crt", d / "server.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return crt, key


def test_tls_listener(passwd: Path, port: int, cert: tuple[Path, Path]) -> None:
    """With --tls-port, clients connect over TLS and still need their password."""
    crt, key = cert
    tls_port = free_port()
    with BrokerProcess("127.0.0.1", port, passwd, tls_port=tls_port, certfile=crt,
                       keyfile=key):
        results = tls_connect_codes(tls_port, crt, "a1", [password("a1"), "wrong"])
        assert results[0] == [0]
        assert results[1] and results[1][0] != 0


def tls_connect_codes(tls_port: int, ca: Path, user: str, passwords: list[str]
                      ) -> list[list[int]]:
    """The CONNACK codes a TLS client gets for each password (empty list: no answer)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    results = []
    for pw in passwords:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        c.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
        c.username_pw_set(user, pw)
        got: list[int] = []
        c.on_connect = lambda cl, u, f, rc, p, got=got: got.append(int(rc.value))
        c.connect("127.0.0.1", tls_port)
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            c.loop(0.1)
        c.disconnect()
        results.append(got)
    return results
