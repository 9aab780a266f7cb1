"""`fleetflow broker mosquitto-config`: files Mosquitto 2.x accepts, and the bridge from a
facility Mosquitto to a cloud broker (here the embedded amqtt broker)."""

from __future__ import annotations

import getpass
import queue
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from broker import (
    BrokerProcess,
    Identity,
    PasswordFile,
    free_port,
    mosquitto,
    write_mosquitto_config,
)
from tests.test_broker_cli import cert, tls_connect_codes  # noqa: F401 (fixture)
from tests.test_broker_enforcement import Client, password

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.mosquitto


@pytest.fixture
def run_mosquitto(mosquitto_bin: str) -> Iterator[object]:
    """``run_mosquitto(conf, port)`` starts Mosquitto and waits for it; stopped afterwards."""
    with ExitStack() as running:

        def _run(conf: Path, port: int) -> subprocess.Popen[bytes]:
            return running.enter_context(mosquitto(conf, port, mosquitto_bin))

        yield _run


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleetflow", "broker", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_cli_writes_private_files(tmp_path: Path) -> None:
    """The command writes mosquitto.conf, passwd and acl, each mode 0600."""
    pf = PasswordFile(tmp_path / "users")
    pf.add(Identity("a1", "agent", facility="F1"), "pw", iterations=5)
    out = tmp_path / "mq"
    r = _cli("mosquitto-config", str(out), "--passwd", str(pf.path), "--port", "1999")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["acl", "mosquitto.conf", "passwd"]
    for p in out.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    conf = (out / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "listener 1999 0.0.0.0" in conf
    assert (out / "passwd").read_text().startswith("a1:$7$")
    assert "user a1\ntopic write fleetflow/v1/F1/agent/a1/state\n" in (out / "acl").read_text()


def test_cli_bridge_needs_its_flags(tmp_path: Path) -> None:
    """--bridge-to without the facility and credentials is a one-line error."""
    pf = PasswordFile(tmp_path / "users")
    pf.add(Identity("x", "admin"), "pw", iterations=5)
    r = _cli("mosquitto-config", str(tmp_path / "mq"), "--passwd", str(pf.path),
             "--bridge-to", "cloud:1883", "--facility", "F1")
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        "fleetflow broker: --bridge-to needs --bridge-user and --bridge-password"]
    assert not (tmp_path / "mq").exists()


def test_cli_bridges_several_facilities_of_one_broker(tmp_path: Path) -> None:
    """Repeated --facility/--bridge-user/--bridge-password write one bridge per facility,
    each with its own cloud user; counts that do not match are a one-line error."""
    pf = PasswordFile(tmp_path / "users")
    pf.add(Identity("x", "admin"), "pw", iterations=5)
    base = ("mosquitto-config", str(tmp_path / "mq"), "--passwd", str(pf.path),
            "--bridge-to", "cloud:1883")
    pairs = [("--facility", "F1"), ("--bridge-user", "b-F1"), ("--bridge-password", "p1"),
             ("--facility", "F2"), ("--bridge-user", "b-F2"), ("--bridge-password", "p2")]
    r = _cli(*base, *(x for pair in pairs for x in pair))
    assert r.returncode == 0, r.stderr
    conf = (tmp_path / "mq" / "mosquitto.conf").read_text()
    assert conf.count("\nconnection fleetflow-") == 2
    assert "connection fleetflow-F2\naddress cloud:1883\n" in conf
    assert "remote_username b-F2\nremote_password p2\n" in conf
    assert "topic fleetflow/v1/F1/edge/events out 1" in conf
    r = _cli(*base, *(x for pair in pairs[:5] for x in pair))
    assert r.returncode == 2
    assert r.stderr.splitlines() == ["fleetflow broker: --bridge-to needs one --bridge-user "
                                     "and one --bridge-password per --facility"]


def test_bridge_carries_edge_topics_to_the_cloud_and_commands_back(
    tmp_path: Path, run_mosquitto: object
) -> None:
    """Edge events published on the facility Mosquitto reach the hub on the cloud broker
    through the generated bridge, and the hub's edge/cmd comes back; agent traffic does not
    leave the facility."""
    cloud_users = PasswordFile(tmp_path / "cloud-users")
    cloud_users.add(Identity("bridge-F1", "edge", facility="F1"), "bridge-pw", iterations=50)
    cloud_users.add(Identity("hub", "hub"), password("hub"), iterations=50)
    cloud_users.add(Identity("ops", "admin"), password("ops"), iterations=50)
    site_users = PasswordFile(tmp_path / "site-users")
    site_users.add(Identity("edge1", "edge", facility="F1"), password("edge1"), iterations=50)
    site_users.add(Identity("a1", "agent", facility="F1"), password("a1"), iterations=50)
    cloud_port, site_port = free_port(), free_port()
    with BrokerProcess("127.0.0.1", cloud_port, cloud_users.path):
        r = _cli("mosquitto-config", str(tmp_path / "site"), "--passwd", str(site_users.path),
                 "--listen", "127.0.0.1", "--port", str(site_port),
                 "--bridge-to", f"127.0.0.1:{cloud_port}", "--facility", "F1",
                 "--bridge-user", "bridge-F1", "--bridge-password", "bridge-pw")
        assert r.returncode == 0, r.stderr
        conf = tmp_path / "site" / "mosquitto.conf"
        conf.write_text(conf.read_text() + f"user {getpass.getuser()}\n")
        run_mosquitto(conf, site_port)  # type: ignore[operator]
        ops = Client(cloud_port, "ops")
        ops.subscribe("fleetflow/v1/F1/agent/#")
        hub = Client(cloud_port, "hub")
        hub.subscribe("fleetflow/v1/+/edge/events")
        edge = Client(site_port, "edge1")
        edge.subscribe("fleetflow/v1/F1/edge/cmd")
        agent = Client(site_port, "a1")
        try:
            # The bridge connects asynchronously: publish until the first event crosses.
            deadline = time.monotonic() + 15
            while True:
                agent.publish("fleetflow/v1/F1/agent/a1/state", b"stays home")
                edge.publish("fleetflow/v1/F1/edge/events", b"seq 1")
                try:
                    assert hub.messages.get(timeout=0.3) == (
                        "fleetflow/v1/F1/edge/events", b"seq 1")
                    break
                except queue.Empty:
                    assert time.monotonic() < deadline, "the bridge never carried an event"
            while True:
                hub.publish("fleetflow/v1/F1/edge/cmd", b"pause")
                try:
                    assert edge.messages.get(timeout=0.3) == (
                        "fleetflow/v1/F1/edge/cmd", b"pause")
                    break
                except queue.Empty:
                    assert time.monotonic() < deadline, "the bridge never carried a command"
            assert ops.messages.empty()
        finally:
            for c in (ops, hub, edge, agent):
                c.close()


def test_tls_listener_config_is_accepted_by_mosquitto(
    tmp_path: Path, run_mosquitto: object, cert: tuple[Path, Path]  # noqa: F811
) -> None:
    """With --tls-port, Mosquitto serves TLS with our certificate and still checks passwords."""

    pf = PasswordFile(tmp_path / "users")
    pf.add(Identity("a1", "agent", facility="F1"), password("a1"), iterations=50)
    port, tls_port = free_port(), free_port()
    crt, key = cert
    conf = write_mosquitto_config(tmp_path / "mq", pf, host="127.0.0.1", port=port,
                                  tls_port=tls_port, certfile=crt, keyfile=key,
                                  run_as=getpass.getuser())
    run_mosquitto(conf, port)  # type: ignore[operator]
    codes = tls_connect_codes(tls_port, crt, "a1", [password("a1"), "wrong"])
    assert codes[0] == [0]
    assert codes[1] and codes[1][0] != 0
