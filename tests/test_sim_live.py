"""The simulator's live mode: scenario agents over MQTT against a real embedded broker and a
real ``fleetflow edge`` process, in scaled real time."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agents_sim.mqtt_hub import wait_edge_online
from agents_sim.sim import (
    Scenario,
    ScenarioError,
    load_scenario,
    run_live,
    run_virtual,
)
from broker import BrokerProcess, free_port
from fleetflow.__main__ import main

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
SMOKE = ROOT / "scenarios" / "smoke.yaml"
TERMINAL = {"workflow_completed", "workflow_failed", "workflow_cancelled"}


class Stack:
    """An embedded broker and one ``fleetflow edge`` per facility of a scenario, loading
    the facility's templates (shipped names) and the simulator's warehouse map."""

    def __init__(self, tmp: Path, scenario: Scenario) -> None:
        self.tmp, self.scenario = tmp, scenario
        self.port = free_port()
        self.broker = BrokerProcess("127.0.0.1", self.port, tmp / "passwd",
                                    allow_anonymous_dev=True)
        self.edges: list[subprocess.Popen[bytes]] = []

    def start(self, map_file: Path, hub: bool = False) -> Stack:
        self.broker.start()
        if hub:  # before the edges: it reads their retained statuses either way
            log = open(self.tmp / "hub.log", "ab")  # noqa: SIM115 (closed below)
            self.edges.append(subprocess.Popen(
                [PYTHON, "-m", "fleetflow", "hub", "--broker", f"mqtt://127.0.0.1:{self.port}",
                 "--data", str(self.tmp / "hub"), "--templates", str(ROOT / "templates"),
                 "--username", "", "--port", str(free_port())], cwd=ROOT, stdout=log,
                stderr=log))
            log.close()
        for f in self.scenario.facilities:
            templates = self.tmp / f.id / "templates"
            templates.mkdir(parents=True)
            for name in f.templates:
                shutil.copy(ROOT / "templates" / f"{name}.yaml", templates)
            log = open(self.tmp / f.id / "edge.log", "ab")  # noqa: SIM115 (closed in stop)
            self.edges.append(subprocess.Popen(
                [PYTHON, "-m", "fleetflow", "edge", "--facility", f.id,
                 "--broker", f"mqtt://127.0.0.1:{self.port}", "--data",
                 str(self.tmp / f.id / "data"), "--templates", str(templates),
                 "--map", str(map_file), "--metrics-port", "0"],
                cwd=ROOT, stdout=log, stderr=log))
            log.close()
            assert wait_edge_online("127.0.0.1", self.port, f.id, username=None,
                                    timeout=30), self.log(f.id)
        return self

    def log(self, facility: str) -> str:
        return (self.tmp / facility / "edge.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        for proc in self.edges:
            proc.terminate()
        for proc in self.edges:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.broker.stop()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Factory of a broker + edges for a scenario; everything is stopped at the end."""
    made: list[Stack] = []

    def make(scenario: Scenario, hub: bool = False) -> Stack:
        s = Stack(tmp_path, scenario)
        made.append(s)
        return s.start(SMOKE.parent / "maps" / "warehouse.yaml", hub)

    yield make
    for s in made:
        s.stop()


@pytest.mark.slow
def test_smoke_scenario_runs_live_to_completion(stack: Callable[[Scenario], Stack]) -> None:
    """Live mode against the embedded broker runs the smoke scenario with every workflow
    terminal, the same arrivals as the virtual run, and a gapless event log."""
    smoke = load_scenario(SMOKE)
    s = stack(smoke)
    result = run_live(smoke, "127.0.0.1", s.port, speed=60)
    assert result.all_terminal, (result.summary(), s.log("plant"))
    virtual = run_virtual(smoke)
    live_arrivals = sorted(wf.split("-", 2)[2] for wf in result.workflows["plant"])
    virtual_arrivals = sorted(wf.split("-", 1)[1] for wf in virtual.workflows["plant"])
    assert live_arrivals == virtual_arrivals
    events = result.events["plant"]
    assert result.missing == {"plant": []}
    assert [e.seq for e in events] == list(range(events[0].seq, events[-1].seq + 1))
    ended = {e.workflow_id for e in events if e.kind in TERMINAL}
    assert ended >= set(result.workflows["plant"])
    from agents_sim.report import kpis

    report = kpis(result.events, duration_s=result.duration_s)
    assert report.workflows["created"] == len(result.workflows["plant"])
    assert report.workflows["open"] == 0


FAILURE = """
name: live_failure
duration_s: 20
drain_s: 3600
facilities:
  - id: plant
    map: maps/warehouse.yaml
    templates: [ai_inspection]
    fleet:
      - {kind: robot, count: 1, capabilities: [camera, pallet_jack], node: inspection_bay,
         duration_cv: 0}
      - {kind: robot, id_prefix: spare, count: 1, capabilities: [camera, pallet_jack],
         node: charger, duration_cv: 0}
      - {kind: human, count: 1, capabilities: [rework], node: rework_bench, accept_delay_s: 0}
      - {kind: ai, count: 1, capabilities: [defect_detection]}
    arrivals:
      - {template: ai_inspection, at: [1], data: {min_score: 0.0}}
faults:
  - {at_s: 15, type: agent_failure, target: robot-1}
"""


@pytest.mark.slow
def test_agent_failure_live_makes_the_edge_reallocate(
        stack: Callable[[Scenario], Stack]) -> None:
    """A live agent_failure drops the robot's connection: the broker's will makes the edge
    lose it and requeue its step, which the spare robot finishes."""
    scenario = load_scenario(FAILURE, base_dir=SMOKE.parent)
    s = stack(scenario)
    # 10x, not faster: the fault (t=15) must find the robot on its step (assigned at t~1),
    # which a loaded machine could delay past 0.35 s of wall time at 40x.
    result = run_live(scenario, "127.0.0.1", s.port, speed=10)
    assert result.all_terminal, (result.summary(), s.log("plant"))
    events = result.events["plant"]
    lost = [e for e in events if e.kind == "agent_lost" and e.data.get("agent") == "robot-1"]
    assert lost and lost[0].data.get("reason") == "offline", [
        (e.kind, e.data) for e in events if e.kind.startswith("agent")]
    after = events[events.index(lost[0]):]
    assert any(e.kind == "step_requeued" for e in after)
    done = [e for e in after if e.kind == "step_done" and e.data.get("step") == "capture"]
    assert [e.data.get("agent") for e in done] == ["spare-1"]


@pytest.mark.slow
def test_network_drop_live_loses_the_agent_until_it_reconnects(
        stack: Callable[[Scenario], Stack]) -> None:
    """A live network_drop cuts the robot's connection: the edge loses it and reallocates
    its step; when the link is back the robot reconnects and joins again."""
    scenario = load_scenario(FAILURE.replace(
        "type: agent_failure, target: robot-1", "type: network_drop, target: robot-1, "
        "duration_s: 20"), base_dir=SMOKE.parent)
    s = stack(scenario)
    result = run_live(scenario, "127.0.0.1", s.port, speed=40)
    assert result.all_terminal, (result.summary(), s.log("plant"))
    events = result.events["plant"]
    mine = [e.kind for e in events if e.data.get("agent") == "robot-1"
            and e.kind in ("agent_joined", "agent_lost")]
    assert mine[:3] == ["agent_joined", "agent_lost", "agent_joined"], mine
    done = [e for e in events if e.kind == "step_done" and e.data.get("step") == "capture"]
    assert [e.data.get("agent") for e in done] == ["spare-1"]


CROSS = """
name: live_cross
seed: 3
duration_s: 300
drain_s: 3600
hub: {}
facilities:
  - id: fa
    map: maps/warehouse.yaml
    templates: [pick_and_deliver]
    fleet:
      - {kind: robot, id_prefix: fa-robot, count: 2, capabilities: [tote_carrier], node: charger}
      - {kind: human, id_prefix: fa-human, count: 1, capabilities: [picking], node: dock,
         accept_delay_s: 0}
  - id: fb
    map: maps/warehouse.yaml
    templates: [pick_and_deliver]
    fleet:
      - {kind: robot, id_prefix: fb-robot, count: 2, capabilities: [tote_carrier], node: charger}
      - {kind: human, id_prefix: fb-human, count: 1, capabilities: [picking], node: dock,
         accept_delay_s: 0}
cross_facility:
  - source: {facility: fa, template: pick_and_deliver}
    target: {facility: fb, template: pick_and_deliver}
    type: sequential
    at: [10, 120]
"""


@pytest.mark.slow
def test_cross_facility_pairs_run_live_through_the_stacks_hub(
        stack: Callable[..., Stack]) -> None:
    """Live cross-facility pairs: the target's edge holds it until the stack's hub sees the
    source complete and releases it; every pair completes."""
    scenario = load_scenario(CROSS, base_dir=SMOKE.parent)
    s = stack(scenario, hub=True)
    result = run_live(scenario, "127.0.0.1", s.port, speed=30)
    assert result.all_terminal, (result.summary(), s.log("fb"))
    assert sorted(result.workflows["fb"].values()) == ["completed", "completed"]
    fa, fb = result.events["fa"], result.events["fb"]
    for wf_id in result.workflows["fb"]:
        source = wf_id.replace("fb-", "fa-", 1)
        done = next(e for e in fa if e.kind == "workflow_completed"
                    and e.workflow_id == source)
        resolved = next(e for e in fb if e.kind == "dependency_resolved"
                        and e.workflow_id == wf_id)
        assert resolved.data.get("depends_on") == source, resolved.data
        assert resolved.data.get("verdict") == "release", resolved.data
        assert resolved.hlc > done.hlc  # released after the source ended, by the hub
        started = next(e for e in fb if e.kind == "workflow_started" and e.workflow_id == wf_id)
        assert started.seq > resolved.seq


@pytest.mark.parametrize(("args", "says"), [
    (["--broker", "http://somewhere"], "--broker 'http://somewhere' is not mqtt://host:port"),
    ([], "--live needs --broker"),
    (["--broker", "mqtt://127.0.0.1:1", "--speed", "0"], "--speed: 0.0 is not a number"),
])
def test_cli_live_refuses_bad_options_in_one_line(
        args: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`fleetflow sim --live` with a bad broker URL (or none, or a bad speed) exits 2 with
    one line naming the option."""
    assert main(["sim", str(SMOKE), "--live", *args]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1


def test_cli_live_says_when_no_broker_answers(capsys: pytest.CaptureFixture[str]) -> None:
    """An unreachable broker is one line naming its address, exit 2."""
    port = free_port()
    assert main(["sim", str(SMOKE), "--live", "--broker", f"mqtt://127.0.0.1:{port}",
                 "--connect-timeout", "0.5"]) == 2
    err = capsys.readouterr().err
    assert f"no MQTT broker answered at 127.0.0.1:{port}" in err and err.count("\n") == 1


def test_live_refuses_faults_it_cannot_do_yet(tmp_path: Path) -> None:
    """A fault live mode cannot carry out is refused, naming the field, before connecting."""
    scenario = load_scenario(FAILURE.replace("agent_failure, target: robot-1",
                                             "battery_depletion, target: robot-1"),
                             base_dir=SMOKE.parent)
    with pytest.raises(ScenarioError, match=r"faults\[0\]\.type: 'battery_depletion' is not "
                                            "in live mode yet"):
        run_live(scenario, "127.0.0.1", free_port(), speed=10)


@pytest.mark.slow
def test_cli_live_prints_json_and_writes_the_report(
        stack: Callable[[Scenario], Stack], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`fleetflow sim --live --json --report DIR` runs a scenario on a stack, prints the
    summary as JSON and writes the KPI report from the collected events."""
    scenario_file = tmp_path / "one.yaml"
    scenario_file.write_text(FAILURE.replace(
        "faults:\n  - {at_s: 15, type: agent_failure, target: robot-1}\n", "").replace(
        "map: maps/warehouse.yaml", f"map: {SMOKE.parent / 'maps' / 'warehouse.yaml'}"))
    s = stack(load_scenario(scenario_file))
    report = tmp_path / "report"
    assert main(["sim", str(scenario_file), "--live", "--broker",
                 f"mqtt://127.0.0.1:{s.port}", "--speed", "40", "--json",
                 "--report", str(report)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["mode"] == "live" and summary["all_terminal"] is True
    assert summary["facilities"]["plant"]["workflows"] == 1
    kpis = json.loads((report / "kpis.json").read_text())
    assert kpis["workflows"]["created"] == 1 and (report / "gantt.png").is_file()


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"speed": 0.0}, "speed: 0.0 is not a number in"),
    ({"speed": float("nan")}, "speed: nan is not a number in"),
    ({"port": 70000}, "port: 70000 is not a TCP port"),
    ({"connect_timeout": -1.0}, "connect_timeout: -1.0 is not a positive number"),
])
def test_run_live_refuses_bad_arguments_naming_them(kwargs: dict[str, float],
                                                    says: str) -> None:
    """run_live refuses a bad speed, port or timeout by name, before connecting."""
    args = {"port": free_port(), "speed": 10.0, "connect_timeout": 0.5, **kwargs}
    with pytest.raises(ValueError, match=says):
        run_live(load_scenario(SMOKE), "127.0.0.1", **args)
