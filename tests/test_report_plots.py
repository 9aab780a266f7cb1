"""The report on disk (agents_sim.report.write_report): kpis.json and four PNG plots drawn
from a real core's log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents_sim.report import PLOTS, kpis, write_report
from agents_sim.sim import load_scenario, run_virtual
from edge_runtime.core import Append, Core, Event
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TWO = load_template({"name": "two", "steps": [
    {"id": "a", "kind": "robot"}, {"id": "b", "kind": "human", "after": ["a"]}]})


def _log(workflows: int = 3) -> dict[str, list[Event]]:
    """A robot and a person each doing one step of ``workflows`` workflows, in turn."""
    fl = ScriptedFleet(Core("f1", {"two": TWO}), tick=1.0, start=0.0)
    fl.agent("r1", "robot", [])
    fl.agent("h1", "human", [])
    for i in range(workflows):
        fl.create("two", f"w{i}")
        fl.run()
    return {"f1": [e.event for e in fl.effects if isinstance(e, Append)]}


TINY = """
name: tiny
duration_s: 60
facilities:
  - id: f1
    templates: [ai_inspection]
    fleet:
      - {kind: robot, capabilities: [camera, pallet_jack]}
      - {kind: human, capabilities: [rework]}
      - {kind: ai, capabilities: [defect_detection]}
    arrivals: [{template: ai_inspection, at: [1, 2]}]
"""


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return data[:8] == PNG_MAGIC and len(data) > 5000


def test_the_report_is_kpis_json_and_four_valid_pngs(tmp_path: Path) -> None:
    """kpis.json holds the log's KPIs; each plot is a real PNG of some size."""
    logs = _log()
    paths = write_report(logs, tmp_path / "out")
    assert [p.name for p in paths] == ["kpis.json", *PLOTS]
    assert json.loads(paths[0].read_text()) == kpis(logs).model_dump(mode="json")
    assert all(_is_png(p) for p in paths[1:])


def test_a_simulator_run_is_reported_over_the_time_it_took(tmp_path: Path) -> None:
    """A SimResult is reported over its ``sim_s`` (past the scenario's 60 s, draining)."""
    result = run_virtual(load_scenario(TINY))
    paths = write_report(result, tmp_path)
    written = json.loads(paths[0].read_text())
    assert written == kpis(result.events, duration_s=result.sim_s).model_dump(mode="json")
    done = sum(state == "completed" for state in result.workflows["f1"].values())
    assert done == 2 and written["throughput"]["completed"] == done
    assert written["agents_by_kind"] == {"ai": 1, "human": 1, "robot": 1}
    assert all(_is_png(p) for p in paths[1:])


def test_the_same_log_gives_the_same_files(tmp_path: Path) -> None:
    """The report is deterministic: PNGs carry no version or date, the bytes repeat."""
    logs = _log()
    first = [p.read_bytes() for p in write_report(logs, tmp_path / "1")]
    assert first == [p.read_bytes() for p in write_report(logs, tmp_path / "2")]


def test_a_report_of_an_empty_log_says_so(tmp_path: Path) -> None:
    """No events: the JSON says ``empty`` and the plots are still written, saying so."""
    paths = write_report({"f1": []}, tmp_path)
    assert json.loads(paths[0].read_text())["empty"] is True
    assert all(_is_png(p) for p in paths[1:])


def test_bad_input_writes_nothing(tmp_path: Path) -> None:
    """Neither a mapping nor a run: a TypeError naming the argument, no directory made."""
    out = tmp_path / "never"
    with pytest.raises(TypeError, match="result_or_events"):
        write_report(42, out)
    with pytest.raises(TypeError, match=r"events_by_facility\['f1'\]\[0\]"):
        write_report({"f1": [{"kind": "step_done"}]}, out)
    assert not out.exists()


def test_a_file_in_the_way_of_the_directory_is_refused(tmp_path: Path) -> None:
    """``out_dir`` naming a file: an error naming ``out_dir``, the file untouched."""
    blocker = tmp_path / "file"
    blocker.write_text("keep")
    with pytest.raises(NotADirectoryError, match="out_dir"):
        write_report(_log(1), blocker)
    assert blocker.read_text() == "keep"
