"""Replaying a production run (``fleetflow sim --replay``): a real edge records its core's
inputs in its store while real native agents work; the replay feeds them through a core again.

One recorded run (module scope: it takes some seconds) serves the read-only tests: an edge
in-process on the embedded broker with ``record_inputs``, two robots, workflows with a wait
step (a timer firing), a refused command, a restart in the middle.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agents_sim.native import AgentSpec, FleetRunner
from agents_sim.vda_agv import run_agv
from bench.wire import Wire, start_broker
from broker import stop_process
from edge_runtime.core import Event
from edge_runtime.replay import NO_INPUTS, ReplayError, replay_store, workflow_outcomes
from edge_runtime.shell import EdgeConfig, EdgeRuntime
from edge_runtime.store import EventStore, store_path
from edge_runtime.templates import load_templates
from fleetflow.__main__ import main
from topics import (
    EdgeEvent,
    ErrorReport,
    HubCommand,
    decode_edge_event,
    decode_error_report,
    encode,
)

F = "rp"
ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = """\
name: haul
steps:
  - {id: fetch, kind: robot, capabilities: [lift], estimated_duration_s: 0.2}
  - {id: settle, kind: wait, duration_s: 0.3, after: [fetch]}
  - {id: deliver, kind: robot, capabilities: [lift], estimated_duration_s: 0.2, after: [settle]}
"""


class Watch:
    """Records the edge's events and error reports; sends hub commands."""

    def __init__(self, port: int) -> None:
        self.events: list[EdgeEvent] = []
        self.errors: list[ErrorReport] = []
        self.changed = threading.Condition()
        self.wire = Wire(port, "watch", [(f"fleetflow/v1/{F}/edge/events", 1),
                                         (f"fleetflow/v1/{F}/edge/errors", 1)], self._on)

    def _on(self, topic: str, payload: bytes, _at: float) -> None:
        with self.changed:
            if topic.endswith("/events"):
                self.events.append(decode_edge_event(payload))
            else:
                self.errors.append(decode_error_report(payload))
            self.changed.notify_all()

    def create(self, workflow_id: str, template: str = "haul") -> None:
        cmd = HubCommand(command_id=f"c-{workflow_id}", action="create_workflow",
                         args={"template": template, "workflow_id": workflow_id})
        self.wire.publish(f"fleetflow/v1/{F}/edge/cmd", encode(cmd), qos=1)

    def wait(self, check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not check():
                left = deadline - time.monotonic()
                assert left > 0, f"{what}; saw {[e.kind for e in self.events]}"
                self.changed.wait(left)

    def done(self, *workflows: str) -> None:
        self.wait(lambda: {e.workflow_id for e in self.events
                           if e.kind == "workflow_completed"} >= set(workflows),
                  f"{workflows} not completed")


def _edge(port: int, tmp: Path, record: bool, vda: bool = False) -> EdgeRuntime:
    config = EdgeConfig(facility=F, data_dir=tmp / "data", port=port,
                        templates_dir=tmp / "templates", map_path=ROOT / "maps" / "demo.yaml",
                        record_inputs=record, vda=vda)
    rt = EdgeRuntime(config)
    rt.start()
    assert rt.wait_ready(10), "the edge did not subscribe"
    return rt


def _stop(rt: EdgeRuntime) -> None:
    rt.request_stop()
    assert rt.wait() == 0


def _fleet(port: int) -> FleetRunner:
    specs = [AgentSpec(f"r{i}", kind="robot", capabilities=("lift",), node="dock", speed=10,
                       state_period_s=0.5) for i in (1, 2)]
    return FleetRunner(F, specs, port=port)


def _record_run(tmp: Path, record: bool = True) -> Path:
    """A run of the edge (restarted once) with two robots; the edge's data directory."""
    (tmp / "templates").mkdir(parents=True)
    (tmp / "templates" / "haul.yaml").write_text(TEMPLATE)
    with start_broker("embedded", tmp) as port:
        watch = Watch(port)
        try:
            rt = _edge(port, tmp, record)
            with _fleet(port):
                watch.wait(lambda: sum(e.kind == "agent_joined" for e in watch.events) == 2,
                           "the robots did not join")
                watch.create("w1")
                watch.create("bad", template="nope")  # refused: no such template
                watch.create("w2")
                watch.done("w1", "w2")
                watch.wait(lambda: bool(watch.errors), "the bad command was not refused")
            _stop(rt)
            rt = _edge(port, tmp, record)  # the same store: a restart in the middle
            with _fleet(port):
                watch.create("w3")
                watch.done("w3")
            _stop(rt)
        finally:
            watch.wire.close()
    return tmp / "data"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data directory of a recorded run (read only by the tests)."""
    return _record_run(tmp_path_factory.mktemp("recorded"))


def _events(data: Path) -> list[Event]:
    with EventStore(store_path(data), None, read_only=True) as store:
        return list(store.read())


def test_replay_of_an_unchanged_run_reports_no_difference(recorded: Path) -> None:
    """Every recorded input through a fresh core gives the recorded log, byte for byte."""
    report = replay_store(recorded)
    assert report.identical, report.summary()
    assert report.first_difference is None and report.workflows == {}
    assert report.boots == 2 and report.recorded_events == report.replayed_events > 0
    assert report.totals["replayed"]["completed"] == 3


def test_the_recording_holds_timers_refusals_and_restarts(recorded: Path) -> None:
    """The run had what the replay must follow: timer firings, a refusal, two boots."""
    report = replay_store(recorded)
    assert report.timers["recorded_fired"] > 0 and report.timers["virtual_fired"] == 0
    assert report.refusals["recorded"] == report.refusals["replayed"] == 1
    kinds = [e.kind for e in _events(recorded)]
    assert "step_done" in kinds and kinds.count("workflow_completed") == 3


def test_cli_replay_unchanged_exits_0_saying_no_difference(
        recorded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``fleetflow sim --replay DATA`` prints "no difference" and exits 0."""
    assert main(["sim", "--replay", str(recorded)]) == 0
    assert "no difference" in capsys.readouterr().out


def test_changed_template_reports_where_the_outcome_differs(
        recorded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A template whose wait step is longer: the replay differs, from a named seq, and the
    CLI exits 1 with the first differing seq in its JSON."""
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "haul.yaml").write_text(TEMPLATE.replace("duration_s: 0.3", "duration_s: 30"))
    report = replay_store(recorded, templates=load_templates(changed))
    assert not report.identical
    first = report.first_difference
    assert first is not None and 1 < first["seq"] <= report.recorded_events
    assert report.workflows and report.timers["recorded_skipped"] > 0
    assert main(["sim", "--replay", str(recorded), "--templates", str(changed), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["identical"] is False and out["first_difference"]["seq"] == first["seq"]


def test_changed_core_option_reports_differences(recorded: Path) -> None:
    """A core option set differently (stall checks on) changes the log from the first
    assignment on; the recorded outcome is listed beside the replayed one."""
    recorded_log = _events(recorded)
    first_assign = next(e.seq for e in recorded_log if e.kind == "step_assigned")
    report = replay_store(recorded, config={"stall_factor": 3.0})
    assert report.first_difference is not None
    assert report.first_difference["seq"] == first_assign
    assert report.first_difference["recorded"]["kind"] == "step_assigned"
    assert report.changed == ["stall_factor=3.0"]


def test_cli_set_and_strategy_are_checked(recorded: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown core option or strategy exits 2 naming it, before anything is replayed."""
    assert main(["sim", "--replay", str(recorded), "--set", "colour=red"]) == 2
    assert "'colour' is not a core option" in capsys.readouterr().err
    assert main(["sim", "--replay", str(recorded), "--strategy", "resource=shouting"]) == 2
    assert "strategies:" in capsys.readouterr().err


def test_replay_options_without_replay_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """--templates, --strategy and --set are refused with a scenario run, naming them."""
    assert main(["sim", str(ROOT / "scenarios" / "smoke.yaml"), "--set", "x=1"]) == 2
    assert "--set only go with --replay STORE" in capsys.readouterr().err


def test_replay_writes_the_replayed_runs_kpis(recorded: Path, tmp_path: Path) -> None:
    """``--report DIR`` writes the replayed run's KPIs (agents_sim.report)."""
    assert main(["sim", "--replay", str(recorded), "--report", str(tmp_path / "r"),
                 "--json"]) == 0
    kpis = json.loads((tmp_path / "r" / "kpis.json").read_text())
    assert kpis["workflows"]["completed"] == 3


def test_store_recorded_without_inputs_exits_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A store from an edge run without --record-inputs: exit 2 with the message."""
    data = tmp_path / "data"
    with EventStore(store_path(data), F):
        pass
    assert main(["sim", "--replay", str(data)]) == 2
    assert NO_INPUTS in capsys.readouterr().err
    with pytest.raises(ReplayError, match="recorded no inputs"):
        replay_store(data)


def test_missing_store_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A path with no store: exit 2 naming it."""
    assert main(["sim", "--replay", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_outcomes_fold_a_log_by_workflow(recorded: Path) -> None:
    """Each workflow's outcome: final state, finish time, agents and attempts."""
    outcomes = workflow_outcomes(_events(recorded))
    assert {wf for wf, o in outcomes.items() if o["state"] == "completed"} == {"w1", "w2", "w3"}
    w1 = outcomes["w1"]
    assert w1["attempts"] == 2 and set(w1["agents"]) <= {"r1", "r2"}
    assert isinstance(w1["finished_at"], float)


def test_replay_reads_a_store_copy_while_the_original_is_open(recorded: Path,
                                                              tmp_path: Path) -> None:
    """Read-only: the replay works while another process holds the store read-write."""
    copy = tmp_path / "copy"
    shutil.copytree(recorded, copy)
    with EventStore(store_path(copy), F):  # held read-write, as by a running edge
        assert replay_store(copy).identical


@pytest.fixture
def unrecorded(tmp_path: Path) -> Iterator[Path]:
    """A run of the same edge without --record-inputs."""
    yield _record_run(tmp_path, record=False)


def test_recording_is_off_by_default(unrecorded: Path) -> None:
    """Without record_inputs the store has events but no inputs: the replay refuses it."""
    assert _events(unrecorded)
    with pytest.raises(ReplayError, match="recorded no inputs"):
        replay_store(unrecorded)


def test_edge_command_line_records_with_the_flag(tmp_path: Path) -> None:
    """``fleetflow edge --record-inputs`` records: its boot and a created workflow replay
    with no difference."""
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "haul.yaml").write_text(TEMPLATE)
    data = tmp_path / "data"
    with start_broker("embedded", tmp_path) as port:
        watch = Watch(port)
        edge = subprocess.Popen(
            [sys.executable, "-m", "fleetflow", "edge", "--facility", F, "--broker",
             f"mqtt://127.0.0.1:{port}", "--data", str(data), "--templates",
             str(tmp_path / "templates"), "--record-inputs", "--log-level", "WARNING"],
            stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not any(e.kind == "workflow_created" for e in watch.events):
                assert time.monotonic() < deadline, "the edge never created the workflow"
                watch.create("w1")  # again until the edge subscribed (same id: applied once)
                time.sleep(0.5)
        finally:
            assert stop_process(edge) == 0
            watch.wire.close()
    report = replay_store(data)
    assert report.identical and report.boots == 1 and report.inputs >= 2


def test_vda_agvs_inputs_replay_with_no_difference(tmp_path: Path) -> None:
    """With --vda, the native inputs the bridge derives from a VDA 5050 AGV (joining,
    driving an order to its end) are recorded and replay to the same log."""
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "vda_haul.yaml").write_text(
        "name: vda_haul\nsteps:\n  - {id: haul, kind: robot, capabilities: [transport], "
        "location: pack}\n")
    with start_broker("embedded", tmp_path) as port:
        watch = Watch(port)
        rt = _edge(port, tmp_path, record=True, vda=True)
        agv = run_agv("127.0.0.1", port, "acme", "agv1", node_id="dock", x=0.0, y=0.0,
                      map_id="demo_floor", speed=20.0, state_interval_s=0.5)
        try:
            watch.wait(lambda: any(e.kind == "agent_joined" for e in watch.events),
                       "the AGV did not join")
            watch.create("v1", template="vda_haul")
            watch.done("v1")
        finally:
            agv.stop()
            _stop(rt)
            watch.wire.close()
    report = replay_store(tmp_path / "data")
    assert report.identical, report.summary()
    assert report.totals["recorded"]["completed"] == 1
