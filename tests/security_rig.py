"""Helpers of ``test_security.py`` (no test here): the test users, a test CA made with the
openssl tool, a queue-backed paho client, a raw CONNECT with a will, and ``fleetflow edge``
over ``mqtts://``."""

from __future__ import annotations

import os
import queue
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from conftest import require_tool
from paho.mqtt.enums import CallbackAPIVersion
from up_rig import PYTHON, ROOT

from broker import Identity

FAC = "f1"
USERS = {
    "ops": Identity("ops", "admin"),
    "a1": Identity("a1", "agent", facility=FAC),
    "a2": Identity("a2", "agent", facility=FAC),
    "edge-f1": Identity("edge-f1", "edge", facility=FAC),
    "edge-f2": Identity("edge-f2", "edge", facility="f2"),
    "hub": Identity("hub", "hub"),
}
WAIT = 10.0


def password(name: str) -> str:
    """Each test user's password (distinctive, so a leak is easy to grep)."""
    return f"sec-pw-{name}-7Qx"


def T(facility: str, rest: str) -> str:
    """A native topic."""
    return f"fleetflow/v1/{facility}/{rest}"


def make_ca(d: Path) -> dict[str, Path]:
    """A CA, and a server certificate for 127.0.0.1 signed by it (the openssl tool)."""
    openssl = require_tool("openssl", "apt-get install openssl")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=Fleetflow test CA", "-keyout", "ca.key", "-out", "ca.crt")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr")
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext", "-out", "server.crt")
    return {"ca": d / "ca.crt", "crt": d / "server.crt", "key": d / "server.key"}


class Client:
    """A paho client (QoS 1) whose callbacks only hand results to queues."""

    def __init__(self, port: int, user: str, *, ca: Path | None = None,
                 tls_default: bool = False) -> None:
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connacks: queue.Queue[Any] = queue.Queue()
        self.subacks: queue.Queue[list[int]] = queue.Queue()
        self.paho = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        if ca is not None:
            self.paho.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
        elif tls_default:
            self.paho.tls_set()  # the system's CAs only
        self.paho.username_pw_set(user, password(user))
        self.paho.on_connect = lambda c, u, f, rc, p: self.connacks.put(rc)
        self.paho.on_message = lambda c, u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.paho.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.put(
            [int(r.value) for r in rcs])
        self.paho.connect("127.0.0.1", port)
        self.paho.loop_start()
        self.rc = self.connacks.get(timeout=WAIT)

    def subscribe(self, *filters: str) -> list[int]:
        """Subscribe (QoS 1) and return the SUBACK codes."""
        self.paho.subscribe([(f, 1) for f in filters])
        return self.subacks.get(timeout=WAIT)

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 and wait for the PUBACK."""
        self.paho.publish(topic, payload, qos=1).wait_for_publish(WAIT)

    def next(self) -> tuple[str, bytes]:
        """The next message received."""
        return self.messages.get(timeout=WAIT)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.paho.disconnect()
        self.paho.loop_stop()


def utf8(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def connect_with_will_and_drop(port: int, user: str, will_topic: str) -> int:
    """CONNECT (raw MQTT 3.1.1) with a QoS 1 will, then drop the socket without
    DISCONNECT, so that an accepted will fires; returns the CONNACK code."""
    payload = (utf8(f"will-{user}-{time.monotonic_ns()}") + utf8(will_topic)
               + utf8("offline") + utf8(user) + utf8(password(user)))
    body = utf8("MQTT") + bytes([4, 0x80 | 0x40 | 0x08 | 0x04 | 0x02, 0, 60]) + payload
    assert len(body) < 128  # a one-byte remaining length
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
        s.sendall(bytes([0x10, len(body)]) + body)
        connack = s.recv(4)
    return connack[3]


def start_edge(broker: dict[str, Any], tmp: Path, *, ca: bool = True
          ) -> tuple[subprocess.Popen[bytes], Path]:
    """``fleetflow edge`` for FAC over mqtts:// (with --tls-ca unless ``ca`` is false);
    its process and log."""
    log = tmp / "edge.log"
    env = {**os.environ, "FLEETFLOW_EDGE_PASSWORD": password("edge-f1")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [PYTHON, "-m", "fleetflow", "edge", "--facility", FAC, "--broker",
             f"mqtts://127.0.0.1:{broker['tls_port']}",
             *(["--tls-ca", str(broker["ca"])] if ca else []), "--username", "edge-f1",
             "--data", str(tmp / "edge"), "--map", str(ROOT / "maps" / "demo.yaml")],
            cwd=ROOT, env=env, stdout=out, stderr=out)
    return proc, log
