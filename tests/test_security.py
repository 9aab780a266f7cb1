"""Security proofs on real parts (issue 13): what the broker ACL tests
(``test_broker_enforcement.py``), the edge's bad-input test (``test_edge_e2e.py``) and the
hub's auth tests (``test_hub_api.py``, ``test_hub_auth_http.py``) do not already show.

- An agent cannot reach the hub's topics (``edge/cmd``, ``edge/events``) of any facility,
  nor make a will speak on them — on the embedded broker and on Mosquitto.
- The TLS listener works with a CA made here: a client trusting the CA connects, one
  without it fails, and ``fleetflow edge`` connects over ``mqtts://`` with ``--tls-ca``;
  over that link an authenticated agent claiming another agent's id in its payload (on its
  own, ACL-allowed topic) is refused with ``identity_mismatch`` and changes nothing.
- ``fleetflow up`` at DEBUG: every write route of the live OpenAPI document refuses a
  request without a token (401) and a viewer's (403), changing nothing; and no broker
  password or API token appears in any log or output (the admin token only on the one
  line ``up`` prints it on, by design).
"""

from __future__ import annotations

import getpass
import os
import queue
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from security_rig import (
    FAC,
    USERS,
    WAIT,
    Client,
    T,
    connect_with_will_and_drop,
    make_ca,
    password,
    start_edge,
)
from up_rig import PYTHON, ROOT, Up

from broker import (
    BrokerProcess,
    PasswordFile,
    free_port,
    mosquitto,
    write_mosquitto_config,
)
from topics import (
    AgentConn,
    AgentState,
    decode_edge_event,
    decode_edge_status,
    decode_error_report,
    encode,
)

pytestmark = pytest.mark.slow

# --- a test CA and a broker with a TLS listener ------------------------------------------


@pytest.fixture(scope="module",
                params=["amqtt", pytest.param("mosquitto", marks=pytest.mark.mosquitto)])
def broker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[dict[str, Any]]:
    """A broker with USERS and a TLS listener signed by a test CA: ports and CA path."""
    tmp = tmp_path_factory.mktemp(f"sec-{request.param}")
    pki = make_ca(tmp)
    pf = PasswordFile(tmp / "passwd")
    for ident in USERS.values():
        pf.add(ident, password(ident.name), iterations=50)
    port, tls_port = free_port(), free_port()
    info = {"port": port, "tls_port": tls_port, "ca": pki["ca"], "tmp": tmp}
    if request.param == "amqtt":
        with BrokerProcess("127.0.0.1", port, pf.path, tls_port=tls_port,
                           certfile=pki["crt"], keyfile=pki["key"]):
            yield info
        return
    binary = request.getfixturevalue("mosquitto_bin")
    conf = write_mosquitto_config(tmp / "mq", pf, host="127.0.0.1", port=port,
                                  tls_port=tls_port, certfile=pki["crt"], keyfile=pki["key"],
                                  run_as=getpass.getuser())
    with mosquitto(conf, port, binary):
        yield info


@pytest.fixture
def connect(broker: dict[str, Any]) -> Iterator[Any]:
    """``connect(user, tls=False)`` opens a client; all are closed afterwards."""
    clients: list[Client] = []

    def _connect(user: str, tls: bool = False) -> Client:
        c = (Client(broker["tls_port"], user, ca=broker["ca"]) if tls
             else Client(broker["port"], user))
        clients.append(c)
        return c

    yield _connect
    for c in clients:
        c.close()


# --- hub topics and wills ----------------------------------------------------------------


def test_agent_cannot_reach_hub_topics(connect: Any) -> None:
    """An agent neither reads nor writes edge/cmd or edge/events of its own facility or
    another; the edges and the hub see nothing of it."""
    a1 = connect("a1")
    a1.subscribe("fleetflow/v1/+/edge/cmd", "fleetflow/v1/+/edge/events",
                 T(FAC, "edge/cmd"), T("f2", "edge/events"), T(FAC, "agent/a1/cmd"))
    hub, edge1, edge2 = connect("hub"), connect("edge-f1"), connect("edge-f2")
    hub.subscribe("fleetflow/v1/+/edge/events")
    edge1.subscribe(T(FAC, "edge/cmd"))
    edge2.subscribe(T("f2", "edge/cmd"))
    for topic in (T(FAC, "edge/cmd"), T("f2", "edge/cmd"), T(FAC, "edge/events"),
                  T("f2", "edge/events")):
        a1.publish(topic, b"forged by a1")
    hub.publish(T(FAC, "edge/cmd"), b"hub to f1")
    hub.publish(T("f2", "edge/cmd"), b"hub to f2")
    edge1.publish(T(FAC, "edge/events"), b"f1 event")
    edge2.publish(T("f2", "edge/events"), b"f2 event")
    edge1.publish(T(FAC, "agent/a1/cmd"), b"for a1")  # the control: a1 is listening
    assert edge1.next() == (T(FAC, "edge/cmd"), b"hub to f1")
    assert edge2.next() == (T("f2", "edge/cmd"), b"hub to f2")
    assert sorted([hub.next(), hub.next()]) == [(T(FAC, "edge/events"), b"f1 event"),
                                                (T("f2", "edge/events"), b"f2 event")]
    assert a1.next() == (T(FAC, "agent/a1/cmd"), b"for a1")
    for c in (a1, hub, edge1, edge2):
        assert c.messages.empty(), c.messages.get()


@pytest.mark.parametrize("rest", ["edge/status", "edge/events", "edge/cmd"])
def test_agent_will_on_edge_topics_never_speaks(connect: Any, broker: dict[str, Any],
                                                rest: str) -> None:
    """An agent's will on its edge's status, events or commands topic is refused at
    CONNECT or never delivered (a fake 'edge offline' or event cannot be planted)."""
    ops = connect("ops")
    ops.subscribe("fleetflow/#")
    rc = connect_with_will_and_drop(broker["port"], "a1", T(FAC, rest))
    assert rc in (0, 5)
    time.sleep(0.5)  # a will is published as the broker notices the dropped socket
    connect("a1").publish(T(FAC, "agent/a1/state"), b"control")
    assert ops.next() == (T(FAC, "agent/a1/state"), b"control")
    assert ops.messages.empty(), ops.messages.get()


# --- TLS with a test CA --------------------------------------------------------------------


def test_tls_client_trusting_the_ca_connects_one_without_fails(
        broker: dict[str, Any], connect: Any) -> None:
    """Over the TLS listener a client verifying the test CA connects and is served as its
    user (its ACL too: no other agent's commands); a client with only the system's CAs
    fails the handshake."""
    a1 = connect("a1", tls=True)
    assert a1.rc == 0
    a1.subscribe(T(FAC, "agent/a2/cmd"), T(FAC, "agent/a1/cmd"))
    edge = connect("edge-f1")
    edge.publish(T(FAC, "agent/a2/cmd"), b"for a2")  # the ACL holds on this listener too
    edge.publish(T(FAC, "agent/a1/cmd"), b"over tls")
    assert a1.next() == (T(FAC, "agent/a1/cmd"), b"over tls")
    assert a1.messages.empty()
    with pytest.raises(ssl.SSLCertVerificationError):
        Client(broker["tls_port"], "a1", tls_default=True)


def test_edge_over_tls_refuses_a_forged_payload_identity(broker: dict[str, Any], connect: Any,
                                                         tmp_path: Path) -> None:
    """The edge connects over mqtts:// with --tls-ca; agent a1 sending, on its own topics,
    a state and a conn that claim to be a2 gets identity_mismatch on edge/errors and no
    event mentions a2, while a1's honest conn is taken."""
    ops = connect("ops", tls=True)
    ops.subscribe(T(FAC, "edge/#"))
    proc, log = start_edge(broker, tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                topic, payload = ops.next()
            except queue.Empty:
                continue
            if topic == T(FAC, "edge/status") and b"online" in payload:
                break
        a1 = connect("a1")
        a1.publish(T(FAC, "agent/a1/state"), encode(AgentState(agent_id="a2", ts=time.time())))
        a1.publish(T(FAC, "agent/a1/conn"), encode(AgentConn(agent_id="a2", online=True,
                                                             capabilities=["lift"])))
        a1.publish(T(FAC, "agent/a1/conn"), encode(AgentConn(agent_id="a1", online=True,
                                                             capabilities=["lift"])))
        errors: list[tuple[str, str]] = []
        events: list[str] = []
        deadline = time.monotonic() + 30
        while not any("a1" in e for e in events):
            assert time.monotonic() < deadline, (errors, events, log.read_text())
            try:
                topic, payload = ops.next()
            except queue.Empty:
                continue
            if topic.endswith("edge/errors"):
                report = decode_error_report(payload)
                errors.append((report.topic, report.reason))
            elif topic.endswith("edge/events"):
                ev = decode_edge_event(payload)
                events.append(f"{ev.kind} {ev.data!r}")
        assert errors == [(T(FAC, "agent/a1/state"), "identity_mismatch"),
                          (T(FAC, "agent/a1/conn"), "identity_mismatch")]
        assert not any("a2" in e for e in events), events
        assert f"connected to broker mqtts://127.0.0.1:{broker['tls_port']}" in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


# --- `fleetflow up` at DEBUG: REST writes and secrets in logs -----------------------------


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """``fleetflow up`` with every part at DEBUG (FLEETFLOW_LOG_LEVEL), two agents each."""
    tmp = tmp_path_factory.mktemp("sec-up")
    stack = Up(tmp, "--agents", "2", "--workflow-every", "0", "-q")
    saved = os.environ.get("FLEETFLOW_LOG_LEVEL")
    os.environ["FLEETFLOW_LOG_LEVEL"] = "debug"  # inherited by up and its children
    with ExitStack() as running:
        running.enter_context(stack)
        if saved is None:
            os.environ.pop("FLEETFLOW_LOG_LEVEL")
        else:
            os.environ["FLEETFLOW_LOG_LEVEL"] = saved
        stack.wait_ready()
        yield stack


@pytest.fixture(scope="module")
def viewer(up: Up) -> str:
    """A viewer token made with the CLI while the hub runs."""
    r = subprocess.run([PYTHON, "-m", "fleetflow", "hub", "token", "create", "--data",
                        str(up.data / "hub"), "--name", "sec-viewer", "--role", "viewer"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().split()[-1]


def _write_routes(up: Up) -> list[tuple[str, str]]:
    """(method, path template) of every write operation in the live OpenAPI document."""
    spec = httpx.get(f"{up.api}/openapi.json", timeout=30).json()
    return [(m.upper(), path) for path, ops in spec["paths"].items()
            for m in ops if m.upper() in ("POST", "PUT", "PATCH", "DELETE")]


def _fill(path: str, wid: str) -> str:
    """A path template with real ids: the test's workflow, a live facility, else ``x1``."""
    out = path.replace("{workflow_id}", wid).replace("{facility_id}", "north")
    while "{" in out:
        head, _, rest = out.partition("{")
        out = head + "x1" + rest.partition("}")[2]
    return out


def _state(c: httpx.Client, wid: str) -> tuple[list[str], list[Any]]:
    """What a refused write could change: the workflows' ids, and the trail of ``wid``."""
    ids = sorted(w["id"] for w in c.get("/api/v1/workflows",
                                                 params={"limit": 500}).json()["items"])
    trail = c.get(f"/api/v1/workflows/{wid}/events", params={"limit": 500}).json()["items"]
    return ids, trail


def test_rest_writes_refused_without_token_or_as_viewer(up: Up, viewer: str) -> None:
    """Every write route of the live OpenAPI document answers 401 without a token and 403
    to a viewer's token, and neither changes the workflows or a workflow's trail."""
    with up.client() as admin:
        r = admin.post("/api/v1/workflows", json={"facility": "north",
                                                  "template": "pick_and_deliver"})
        assert r.status_code in (201, 202), r.text
        wid = r.json()["args"]["workflow_id"]
        assert admin.delete(f"/api/v1/workflows/{wid}").status_code in (200, 202)
        time.sleep(1.0)  # the cancellation's events reach the hub: the trail is settled
        before = _state(admin, wid)
    routes = _write_routes(up)
    assert len(routes) >= 15, routes
    refused: list[tuple[str, str, int, int]] = []
    with httpx.Client(base_url=up.api, timeout=30) as anon, up.client(viewer) as view:
        for method, path in routes:
            url = _fill(path, wid)
            none = anon.request(method, url, json={}).status_code
            low = view.request(method, url, json={}).status_code
            refused.append((method, path, none, low))
    assert [r for r in refused if r[2:] != (401, 403)] == []
    time.sleep(0.5)
    with up.client() as admin:
        assert _state(admin, wid) == before


def test_no_password_or_token_in_any_log(up: Up, viewer: str) -> None:
    """With every part at DEBUG, after good and bad MQTT logins and API calls (good, bad
    and too-low tokens, a WebSocket), no broker password or API token is in any log file
    or in up's stdout/stderr — but for the admin token on the line that announces it."""
    from websockets.sync.client import connect as ws_connect

    creds = dict(line.split(": ", 1) for line in
                 (up.data / "credentials.yaml").read_text().splitlines() if ": " in line)
    assert {"hub", "edge-north", "north-agent-1", "south-agent-1"} <= set(creds)
    tokens = {"admin": up.token(), "viewer": viewer,
              "dashboard": (up.data / "dashboard-token").read_text().strip()}
    for user, pw in (("north-agent-1", creds["south-agent-1"]), ("hub", creds["edge-north"]),
                     ("nobody", creds["hub"])):
        bad = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        bad.username_pw_set(user, pw)
        got: queue.Queue[Any] = queue.Queue()
        bad.on_connect = lambda c, u, f, rc, p, got=got: got.put(rc)
        bad.connect("127.0.0.1", up.mqtt_port)
        bad.loop_start()
        assert got.get(timeout=WAIT).is_failure
        bad.loop_stop()
    with up.client(tokens["admin"][:-3] + "zzz") as wrong:
        assert wrong.get("/api/v1/workflows").status_code == 401
    with up.client(viewer) as view:
        assert view.post("/api/v1/facilities/north/stop", json={}).status_code == 403
        assert view.get("/api/v1/whoami").status_code == 200
    with up.client() as admin:
        assert admin.get("/api/v1/facilities").status_code == 200
    ws = up.api.replace("http", "ws") + "/ws/workflows"
    with ws_connect(ws, additional_headers={"Authorization": f"Bearer {tokens['admin']}"},
                    open_timeout=10):
        pass
    assert up.stop() == 0
    texts = {p.name: p.read_text(errors="replace") for p in (up.data / "logs").iterdir()}
    texts["stdout"], texts["stderr"] = up.output, up.errors
    assert "DEBUG" in texts["broker.log"] and "DEBUG" in texts["hub.log"]
    for user in ("north-agent-1", "hub", "nobody"):  # the bad logins were seen, and logged
        assert f"refused user '{user}'" in texts["broker.log"]
    leaks = []
    for name, text in texts.items():
        for what, secret in [*creds.items(), *tokens.items()]:
            # a token's secret part alone counts too (ff_<id>_<secret>: the id is public)
            parts = ([secret, secret.split("_", 2)[2][:12]] if secret.startswith("ff_")
                     else [secret])
            lines = [ln for ln in text.splitlines() if any(p in ln for p in parts)]
            if what == "admin" and name == "stdout":
                lines = [ln for ln in lines if "admin token " not in ln]
            leaks += [f"{name}: {what}: {ln[:200]}" for ln in lines]
    assert leaks == []


def test_edge_without_the_ca_does_not_connect(broker: dict[str, Any], connect: Any,
                                              tmp_path: Path) -> None:
    """An edge given mqtts:// but not the CA (system CAs only) never connects: it keeps
    running, logs that it cannot reach the broker (pointing at --tls-ca), and never
    announces itself."""
    ops = connect("ops")
    ops.subscribe(T(FAC, "edge/status"))
    proc, log = start_edge(broker, tmp_path, ca=False)
    try:
        deadline = time.monotonic() + 8
        while "is --tls-ca the broker's CA?" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert proc.poll() is None
        assert "connected to broker" not in log.read_text()
        seen = [decode_edge_status(ops.messages.get()[1]) for _ in range(ops.messages.qsize())]
        assert not any(st.online for st in seen), seen  # (an earlier edge's retained offline)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)

