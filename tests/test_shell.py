"""The edge shell in-process on a real Mosquitto: timers, refusals, dedup, replay, metrics."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import generate_latest

from edge_runtime.shell import EdgeConfig, EdgeMetrics, EdgeRuntime
from topics import (
    AgentConn,
    CommandAck,
    EdgeEvent,
    ErrorReport,
    HubCommand,
    decode_agent_command,
    decode_edge_event,
    decode_error_report,
    encode,
)

F = "shell"
ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = "name: one\nsteps:\n  - {id: s1, kind: robot, capabilities: [lift]}\n"


class Peer:
    """A test client: records edge/events and edge/errors, publishes raw messages."""

    def __init__(self, port: int, facility: str = F) -> None:
        self.facility = facility
        self.events: list[EdgeEvent] = []
        self.errors: list[ErrorReport] = []
        self._lock = threading.Condition()
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe(
            f"fleetflow/v1/{facility}/edge/+", qos=1)
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert ready.wait(10)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            if msg.topic.endswith("/events"):
                self.events.append(decode_edge_event(bytes(msg.payload)))
            elif msg.topic.endswith("/errors"):
                self.errors.append(decode_error_report(bytes(msg.payload)))
            self._lock.notify_all()

    def wait_for(self, check: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not check():
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out: {[e.kind for e in self.events]} "
                                         f"{[e.reason for e in self.errors]}")
                self._lock.wait(0.1)

    def send(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def command(self, command_id: str, action: str, **args: Any) -> None:
        cmd = HubCommand(command_id=command_id, action=action, args=args)  # type: ignore[arg-type]
        self.send(f"fleetflow/v1/{self.facility}/edge/cmd", encode(cmd))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def peer(mosquitto_port: int) -> Iterator[Peer]:
    """A recording peer on the broker."""
    p = Peer(mosquitto_port)
    yield p
    p.close()


@pytest.fixture
def runtime(mosquitto_port: int, tmp_path: Path) -> Iterator[Callable[..., EdgeRuntime]]:
    """Factory of started in-process runtimes on the broker; all stopped at the end."""
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "one.yaml").write_text(TEMPLATE)
    made: list[EdgeRuntime] = []

    def make(clock: Callable[[], float] = time.time, **kw: Any) -> EdgeRuntime:
        config = EdgeConfig(facility=F, data_dir=tmp_path / "data", port=mosquitto_port,
                            templates_dir=tmp_path / "templates", **kw)
        rt = EdgeRuntime(config, clock=clock)
        rt.start()
        made.append(rt)
        assert rt.wait_ready(10), "the edge did not subscribe"
        return rt

    yield make
    for rt in made:
        rt.request_stop()
        rt.wait()


def _announce(peer: Peer, agent_id: str, liveness_s: float = 10.0) -> None:
    conn = AgentConn(agent_id=agent_id, online=True, capabilities=["lift"], liveness_s=liveness_s)
    peer.send(f"fleetflow/v1/{F}/agent/{agent_id}/conn", encode(conn))


class ManualClock:
    """The runtime's clock, moved only by the test (from the wall time it was made at)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _kinds(peer: Peer, kind: str) -> list[EdgeEvent]:
    return [e for e in peer.events if e.kind == kind]


def test_liveness_timer_loses_a_silent_agent(runtime: Callable[..., EdgeRuntime],
                                             peer: Peer) -> None:
    """A silent agent is lost by timer once its liveness window (x1.5) has passed, not before."""
    clock = ManualClock()
    runtime(clock=clock)
    _announce(peer, "quiet", liveness_s=10.0)
    peer.wait_for(lambda: len(_kinds(peer, "agent_joined")) == 1)
    clock.advance(14.9)
    _announce(peer, "probe")  # handled at the new time, after the timers due by then
    peer.wait_for(lambda: len(_kinds(peer, "agent_joined")) == 2)
    assert not _kinds(peer, "agent_lost")
    clock.advance(0.2)
    peer.wait_for(lambda: bool(_kinds(peer, "agent_lost")))
    (lost,) = _kinds(peer, "agent_lost")
    assert lost.data["agent"] == "quiet"
    assert (lost.hlc >> 16) - (_kinds(peer, "agent_joined")[0].hlc >> 16) >= 15_000


def test_timers_rearmed_after_restart(runtime: Callable[..., EdgeRuntime], peer: Peer) -> None:
    """A liveness window armed before a restart is armed afresh after it, and fires."""
    clock = ManualClock()
    rt = runtime(clock=clock)
    _announce(peer, "sleepy", liveness_s=10.0)
    peer.wait_for(lambda: bool(_kinds(peer, "agent_joined")))
    rt.request_stop()
    assert rt.wait() == 0
    stopped_at = rt.store.last_seq
    runtime(clock=clock)
    clock.advance(15.1)
    peer.wait_for(lambda: bool(_kinds(peer, "agent_lost")))
    assert _kinds(peer, "agent_lost")[0].seq > stopped_at


def test_core_refusal_is_reported(runtime: Callable[..., EdgeRuntime], peer: Peer) -> None:
    """A hub command the core refuses becomes an ErrorReport with the core's reason."""
    runtime()
    peer.command("c-bad", "create_workflow", template="nope", workflow_id="w1")
    peer.wait_for(lambda: bool(peer.errors))
    assert peer.errors[0].reason == "template" and "nope" in peer.errors[0].message
    assert not peer.events


def test_duplicate_command_applied_once(runtime: Callable[..., EdgeRuntime],
                                        peer: Peer) -> None:
    """A hub command sent twice (QoS 1 redelivery) creates one workflow."""
    runtime()
    for _ in range(3):
        peer.command("c-dup", "create_workflow", template="one", workflow_id="w-dup")
    peer.command("c-next", "create_workflow", template="one", workflow_id="w-next")
    peer.wait_for(lambda: any(e.workflow_id == "w-next" for e in peer.events))
    created = [e for e in peer.events if e.kind == "workflow_created"]
    assert [e.workflow_id for e in created] == ["w-dup", "w-next"]
    assert not peer.errors


def test_replay_republishes_stored_events(runtime: Callable[..., EdgeRuntime],
                                          peer: Peer) -> None:
    """A replay command re-sends the stored events from a seq, identical to the originals."""
    runtime()
    peer.command("c1", "create_workflow", template="one", workflow_id="w1")
    peer.wait_for(lambda: any(e.kind == "command_reply" for e in peer.events))
    first = list(peer.events)
    peer.command("r1", "replay", from_seq=2)
    peer.wait_for(lambda: len(peer.events) == 2 * len(first) - 1)
    assert peer.events[len(first):] == first[1:]


def test_metrics_count_inputs_rejects_and_commits(runtime: Callable[..., EdgeRuntime],
                                                  peer: Peer) -> None:
    """The runtime's own registry counts inputs by kind, rejects by reason, and commits."""
    rt = runtime()
    _announce(peer, "r1")
    peer.send(f"fleetflow/v1/{F}/agent/r1/state", b"\xc1")
    peer.wait_for(lambda: bool(peer.errors) and bool(peer.events))
    text = generate_latest(rt.metrics.registry).decode()
    assert 'fleetflow_edge_inputs_total{kind="agent_conn"} 1.0' in text
    assert 'fleetflow_edge_rejects_total{reason="malformed"} 1.0' in text
    assert 'fleetflow_edge_events_total{kind="agent_joined"} 1.0' in text
    assert "fleetflow_edge_commit_seconds_count 1.0" in text


def test_metric_registries_are_per_instance() -> None:
    """Two metric sets in one process do not collide and count apart."""
    a, b = EdgeMetrics(), EdgeMetrics()
    a.inputs.labels(kind="timer").inc()
    assert b"timer" not in generate_latest(b.registry)


def test_second_edge_on_same_store_is_refused(mosquitto_port: int, tmp_path: Path,
                                              runtime: Callable[..., EdgeRuntime]) -> None:
    """A second edge on a store already in use exits 2 with a one-line error."""
    runtime()
    proc = subprocess.run(
        [sys.executable, "-m", "fleetflow", "edge", "--facility", F,
         "--broker", f"mqtt://127.0.0.1:{mosquitto_port}", "--data", str(tmp_path / "data")],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("fleetflow edge: ") and proc.stderr.count("\n") == 1


@pytest.mark.parametrize(("flag", "value", "says"), [
    ("--broker", "http://x:1", "mqtt://host:port"),
    ("--facility", "a/b", "facility"),
    ("--map", "/nonexistent.yaml", "cannot read map"),
])
def test_bad_flags_are_one_line_errors(tmp_path: Path, flag: str, value: str, says: str) -> None:
    """Bad flags and unreadable maps are refused in one line with exit status 2."""
    args = {"--facility": "f1", "--data": str(tmp_path / "d"), flag: value}
    argv = [a for pair in args.items() for a in pair]
    proc = subprocess.run([sys.executable, "-m", "fleetflow", "edge", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and says in proc.stderr and proc.stderr.count("\n") == 1


def test_snapshots_every_n_events_and_restart_from_one(
        runtime: Callable[..., EdgeRuntime], peer: Peer, tmp_path: Path) -> None:
    """Snapshots are saved every N events; a restart resumes from one with seq contiguous."""
    from edge_runtime.store import EventStore, store_path

    rt = runtime(snapshot_every=3)
    for i in range(3):
        peer.command(f"c{i}", "create_workflow", template="one", workflow_id=f"w{i}")
    peer.wait_for(lambda: sum(e.kind == "command_reply" for e in peer.events) == 3)
    rt.request_stop()
    assert rt.wait() == 0
    with EventStore(store_path(tmp_path / "data"), None, read_only=True) as store:
        snapshots = store.snapshot_seqs()
        last = store.last_seq
    assert snapshots and snapshots[-1] >= last - 3
    again = runtime(snapshot_every=3)
    assert again.core.last_seq == last and set(again.core.workflows()) == {"w0", "w1", "w2"}
    peer.command("c3", "create_workflow", template="one", workflow_id="w3")
    peer.wait_for(lambda: any(e.workflow_id == "w3" for e in peer.events))
    seqs = [e.seq for e in peer.events]
    assert seqs == list(range(1, len(seqs) + 1))


def test_core_failing_mid_change_is_rebuilt_from_the_log(
        runtime: Callable[..., EdgeRuntime], peer: Peer) -> None:
    """A core that changed state and then crashed (injected fault) is rebuilt from the log:
    the half change is gone, the error is reported, and the edge keeps serving."""
    rt = runtime()
    peer.command("c0", "create_workflow", template="one", workflow_id="w0")
    peer.wait_for(lambda: any(e.kind == "command_reply" for e in peer.events))
    real = rt.core.handle

    def faulty(inp: Any, now: float) -> Any:
        effects = real(inp, now)  # the real core applies the change in memory ...
        if isinstance(inp, HubCommand) and inp.command_id == "boom":
            raise RuntimeError("injected fault")  # ... and its effects are lost
        return effects

    rt.core.handle = faulty  # type: ignore[method-assign,assignment]
    peer.command("boom", "create_workflow", template="one", workflow_id="w-boom")
    peer.wait_for(lambda: bool(peer.errors))
    assert peer.errors[0].reason == "internal_error"
    peer.command("c1", "create_workflow", template="one", workflow_id="w1")
    peer.wait_for(lambda: any(e.workflow_id == "w1" for e in peer.events))
    assert set(rt.core.workflows()) == {"w0", "w1"}
    seqs = [e.seq for e in peer.events]
    assert seqs == list(range(1, len(seqs) + 1))
    assert not any(e.workflow_id == "w-boom" for e in peer.events)


def _replies(peer: Peer, command_id: str) -> list[EdgeEvent]:
    return [e for e in peer.events if e.kind == "command_reply" and e.data["cmd"] == command_id]


def test_commands_sent_while_stopped_are_handled_after_restart(
        runtime: Callable[..., EdgeRuntime], peer: Peer) -> None:
    """A hub command lost while the edge was down is applied once the hub resends it (no
    broker session keeps it: docs/protocol.md, "Delivery"); a repeat of an applied one is
    answered with the original reply (same seq), not applied twice."""
    rt = runtime()
    rt.request_stop()
    assert rt.wait() == 0
    peer.command("c-late", "create_workflow", template="one", workflow_id="w-late")  # lost
    runtime()
    peer.command("c-late", "create_workflow", template="one", workflow_id="w-late")
    peer.wait_for(lambda: len(_replies(peer, "c-late")) == 1)
    peer.command("c-late", "create_workflow", template="one", workflow_id="w-late")
    peer.wait_for(lambda: len(_replies(peer, "c-late")) == 2)
    first, again = _replies(peer, "c-late")
    assert again.seq == first.seq and again.data == first.data
    assert sum(e.kind == "workflow_created" for e in peer.events) == 1
    assert not peer.errors


def test_finished_workflow_is_archived_with_its_record(
        runtime: Callable[..., EdgeRuntime], peer: Peer) -> None:
    """A completed workflow leaves the core; its record, committed with its events, reads back."""
    from topics import StepDone

    rt = runtime()
    _announce(peer, "r1")
    peer.command("c1", "create_workflow", template="one", workflow_id="w1")
    peer.wait_for(lambda: any(e.kind == "step_assigned" for e in peer.events))
    done = StepDone(event_id="e1", agent_id="r1", ts=1.0, workflow_id="w1", step_id="s1")
    peer.send(f"fleetflow/v1/{F}/agent/r1/event", encode(done))
    peer.wait_for(lambda: any(e.kind == "workflow_archived" for e in peer.events))
    assert rt.core.workflow("w1") is None  # out of the engine's memory
    record = rt.store.workflow_record("w1")
    assert record is not None
    view = rt.workflows.get("w1")
    assert view is not None and view.state == "completed"
    assert rt.workflows.stats()["store"]["hits"] == 1
    assert rt.workflows.get("w1") is view and rt.workflows.stats()["memory"]["hits"] == 1


class AgentInbox:
    """An agent's side of ``cmd``, by hand: records every command, acknowledges on request."""

    def __init__(self, port: int, agent_id: str) -> None:
        self.agent_id = agent_id
        self.commands: list[Any] = []
        self._lock = threading.Condition()
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        topic = f"fleetflow/v1/{F}/agent/{agent_id}/cmd"
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert ready.wait(10)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.commands.append(decode_agent_command(bytes(msg.payload)))
            self._lock.notify_all()

    def of_type(self, kind: str) -> list[Any]:
        with self._lock:
            return [c for c in self.commands if c.type == kind]

    def wait_for(self, check: Callable[[AgentInbox], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not check(self):
                assert time.monotonic() < deadline, [c.type for c in self.commands]
                self._lock.wait(0.1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_unacknowledged_command_is_resent_until_the_agent_acks(
        runtime: Callable[..., EdgeRuntime], peer: Peer, mosquitto_port: int) -> None:
    """An Assign the agent does not acknowledge comes again; a CommandAck stops it, and the
    agent's events are acknowledged (EventAck) after the commit."""
    inbox = AgentInbox(mosquitto_port, "r1")
    try:
        runtime()
        _announce(peer, "r1")
        peer.command("c1", "create_workflow", template="one", workflow_id="w1")
        inbox.wait_for(lambda i: len(i.of_type("assign")) >= 2, 10)  # resent after ~1 s
        assign = inbox.of_type("assign")[0]
        ack = CommandAck(event_id="ack-1", agent_id="r1", ts=1.0, command_id=assign.command_id)
        peer.send(f"fleetflow/v1/{F}/agent/r1/event", encode(ack))
        inbox.wait_for(lambda i: any("ack-1" in c.event_ids for c in i.of_type("event_ack")))
        settled = len(inbox.of_type("assign"))
        time.sleep(2.5)  # past the next resend time
        assert len(inbox.of_type("assign")) == settled
    finally:
        inbox.close()


def test_unacknowledged_commands_are_resent_after_a_restart(
        runtime: Callable[..., EdgeRuntime], peer: Peer, mosquitto_port: int) -> None:
    """The outbox is durable: a restarted edge resends every command not acknowledged (no
    agent listened before the stop)."""
    rt = runtime()
    _announce(peer, "r1")
    peer.command("c1", "create_workflow", template="one", workflow_id="w1")
    peer.wait_for(lambda: any(e.kind == "step_assigned" for e in peer.events))
    rt.request_stop()
    assert rt.wait() == 0
    inbox = AgentInbox(mosquitto_port, "r1")
    try:
        runtime()
        inbox.wait_for(lambda i: [c.workflow_id for c in i.of_type("assign")] == ["w1"], 10)
    finally:
        inbox.close()


def test_deaf_link_is_dropped_and_reconnected(mosquitto_bin: str, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """A link on which the edge never hears its own status back is dropped, and the edge
    reconnects, says so in its log and counts it (the watchdog)."""
    from conftest import run_mosquitto

    acl = tmp_path / "acl"
    # Everything but reading its own status: the broker takes the edge's heartbeats and
    # never hands them back — connected, pinged, and deaf to that topic.
    acl.write_text("".join(f"topic readwrite fleetflow/v1/{F}/{t}\n"
                           for t in ("agent/#", "edge/cmd", "edge/events", "edge/errors"))
                   + f"topic write fleetflow/v1/{F}/edge/status\n")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "one.yaml").write_text(TEMPLATE)
    # `user root`: Mosquitto reads the ACL after dropping privileges (ignored if not root).
    conf = f"user root\nacl_file {acl}\n"
    with run_mosquitto(mosquitto_bin, tmp_path, extra_conf=conf) as port:
        rt = EdgeRuntime(EdgeConfig(facility=F, data_dir=tmp_path / "data", port=port,
                                    templates_dir=tmp_path / "templates", watchdog_s=1.5))
        rt.start()
        try:
            assert rt.wait_ready(10)
            deadline = time.monotonic() + 20
            while (rt.metrics.registry.get_sample_value(
                    "fleetflow_edge_watchdog_reconnects_total") or 0) < 2:
                assert time.monotonic() < deadline, "the watchdog never fired"
                time.sleep(0.1)
            assert rt.wait_ready(10)  # connected and subscribed again
            assert "the link is deaf" in caplog.text
        finally:
            rt.request_stop()
            assert rt.wait() == 0
