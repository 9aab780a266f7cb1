"""Backing up, restoring and verifying an edge's store, as docs/store.md says: a backup
taken while the edge runs, copied in place of the store, starts the edge at the backup's seq
with its workflows; an empty store's backup says it holds no events; a gracefully stopped
edge's log replays to the state it stopped with (``fleetflow edge verify``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_runtime.store import EventStore
from topics import HubCommand, encode

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
FACILITY = "north"

pytestmark = pytest.mark.timeout(180)


def _fleetflow(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m fleetflow ARGS`` in the repository; its result."""
    return subprocess.run([PYTHON, "-m", "fleetflow", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def _until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``check`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class _Edge:
    """One ``fleetflow edge`` for ``north`` on an anonymous broker, its log in a file."""

    def __init__(self, port: int, data: Path, log: Path) -> None:
        self.log = log
        cmd = [PYTHON, "-m", "fleetflow", "edge", "--facility", FACILITY,
               "--broker", f"mqtt://127.0.0.1:{port}", "--data", str(data),
               "--templates", str(ROOT / "templates"), "--map", str(ROOT / "maps" / "demo.yaml")]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=out)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM and wait: its exit status."""
        self.proc.terminate()
        return self.proc.wait(30)


@pytest.fixture
def edges() -> Iterator[list[_Edge]]:
    """Edges started by a test; any still running at the end is killed."""
    made: list[_Edge] = []
    yield made
    for edge in made:
        if edge.proc.poll() is None:
            edge.proc.kill()
            edge.proc.wait()


def _create(port: int, workflow_id: str) -> None:
    """Send the hub's ``create_workflow`` for ``workflow_id`` (QoS 1) and disconnect."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"restore-test-{workflow_id}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        cmd = HubCommand(command_id=f"c-{workflow_id}", action="create_workflow",
                         args={"template": "pick_and_deliver", "workflow_id": workflow_id})
        info = client.publish(f"fleetflow/v1/{FACILITY}/edge/cmd", encode(cmd), qos=1)
        info.wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def _last_seq(store: Path) -> int:
    """The last seq of the store at ``store``, read without taking the writer's lock."""
    with EventStore(store, None, read_only=True) as reader:
        return reader.last_seq


def test_backup_restored_in_place_starts_the_edge_at_its_seq(
        mosquitto_port: int, tmp_path: Path, edges: list[_Edge]) -> None:
    """The documented procedure: back up while the edge runs, stop it, move the store aside,
    copy the backup in, start again: the edge starts at the backup's seq with its workflow."""
    data = tmp_path / "edge-north"
    edges.append(_Edge(mosquitto_port, data, tmp_path / "edge-1.log"))
    _until(lambda: "connected to broker" in edges[0].output(), "the edge to connect")
    _create(mosquitto_port, "wf-before")
    _until(lambda: (data / "store").exists() and _last_seq(data / "store") > 0,
           "the workflow's events")
    backup = _fleetflow("edge", "backup", str(tmp_path / "backups" / "north"),
                        "--data", str(data))
    assert backup.returncode == 0, backup.stderr
    held = re.search(r"backed up facility north: events 1\.\.(\d+) from ", backup.stdout)
    assert held, backup.stdout
    seq = int(held.group(1))
    _create(mosquitto_port, "wf-after")  # after the backup: the restore loses it
    _until(lambda: _last_seq(data / "store") > seq, "the second workflow's events")
    assert edges[0].stop() == 0

    (data / "store").rename(data / "store.damaged")
    shutil.copytree(tmp_path / "backups" / "north", data / "store", symlinks=True)
    edges.append(_Edge(mosquitto_port, data, tmp_path / "edge-2.log"))
    _until(lambda: "started at seq" in edges[1].output(), "the restored edge to start")
    assert f"edge north started at seq {seq};" in edges[1].output(), edges[1].output()
    assert edges[1].stop() == 0
    with EventStore(data / "store", None, read_only=True) as restored:
        created = {e.workflow_id for e in restored.read() if e.kind == "workflow_created"}
    assert "wf-before" in created and "wf-after" not in created
    assert (tmp_path / "backups" / "north" / "CURRENT").exists()  # the backup is untouched


def test_backup_of_an_empty_store_says_it_holds_no_events(tmp_path: Path) -> None:
    """Backing up a store with no events prints "no events yet", not "events 1..0"."""
    EventStore(tmp_path / "edge" / "store", FACILITY).close()
    run = _fleetflow("edge", "backup", str(tmp_path / "bk"), "--data", str(tmp_path / "edge"))
    assert run.returncode == 0, run.stderr
    assert "no events yet (an empty store)" in run.stdout and "1..0" not in run.stdout
    assert _last_seq(tmp_path / "bk") == 0


def test_verify_replays_a_stopped_edges_log_to_the_state_it_stopped_with(
        mosquitto_port: int, tmp_path: Path, edges: list[_Edge]) -> None:
    """After a graceful stop the store holds the live state at its last seq, and `edge
    verify` replays the whole log to exactly it; a state the log does not give is named."""
    data = tmp_path / "edge-north"
    edges.append(_Edge(mosquitto_port, data, tmp_path / "edge.log"))
    _until(lambda: "connected to broker" in edges[0].output(), "the edge to connect")
    for n in range(3):
        _create(mosquitto_port, f"wf-{n}")
    _until(lambda: (data / "store").exists() and _last_seq(data / "store") >= 3,
           "the workflows' events")
    assert edges[0].stop() == 0
    with EventStore(data / "store", None, read_only=True) as store:
        last = store.last_seq
        newest = store.latest_snapshot()
    assert newest is not None and newest.seq == last  # saved by the graceful stop
    args = ("edge", "verify", "--data", str(data), "--templates", str(ROOT / "templates"),
            "--map", str(ROOT / "maps" / "demo.yaml"))
    ok = _fleetflow(*args)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"facility north: events 1..{last} replay to the state saved at seq {last}" \
        in ok.stdout

    with EventStore(data / "store", "north") as store:  # a state the log does not give
        store.save_snapshot(last, newest.data.replace(b"wf-0", b"wf-9"))
    bad = _fleetflow(*args)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"replaying seq 1..{last} differs from its snapshot: state[" in bad.stdout
