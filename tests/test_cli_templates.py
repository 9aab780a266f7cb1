"""`fleetflow templates check`: one line per problem naming the template's full path; exit 0
when all fit, 1 on problems, 2 on bad input (docs/workflows.md, "Checking templates")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable


def _check(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "fleetflow", "templates", "check", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_shipped_templates_fit_the_demo_map_and_the_up_fleet() -> None:
    """The defaults (shipped templates, demo map) with `--fleet up`: no problem, exit 0."""
    out = _check("--fleet", "up")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().splitlines() == [
        "3 of 3 templates valid, checked against the map and fleet: no problems"]


def test_each_problem_is_one_line_with_the_full_path(tmp_path: Path) -> None:
    """A YAML error, an unknown `after`, bad CEL, a location off the map and a missing
    capability are each one line starting with the file's absolute path; exit 1."""
    d = tmp_path / "tpl"
    d.mkdir()
    (d / "bad_yaml.yaml").write_text("name: x\nsteps: [\n")
    (d / "bad_after.yaml").write_text(
        "name: a\nversion: 1\nsteps: [{id: s, kind: robot, after: [nope]}]\n")
    (d / "bad_cel.yaml").write_text(
        "name: c\nversion: 1\nsteps: [{id: d, kind: decision, condition: 'data.x >',"
        " then: [], else: []}]\n")
    (d / "misfit.yaml").write_text(
        "name: m\nversion: 1\nsteps: [{id: lift, kind: robot, capabilities: [lift],"
        " location: bay_9}]\n")
    out = _check("--templates", "tpl", "--capabilities", "robot:transport", cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    problems, summary = lines[:-1], lines[-1]
    assert len(problems) == 5
    assert [p.split(": ", 1)[0] for p in problems] == [
        str(d / n) for n in ("bad_after.yaml", "bad_cel.yaml", "bad_yaml.yaml",
                             "misfit.yaml", "misfit.yaml")]
    assert "unknown step 'nope'" in problems[0]
    assert "CEL" in problems[1]
    assert "not valid YAML/JSON" in problems[2]
    assert problems[3].endswith("step lift: location bay_9 is not on map demo_floor "
                                f"({ROOT / 'maps' / 'demo.yaml'})")
    assert problems[4].endswith("step lift: no robot agent has capabilities lift")
    assert summary == "1 of 4 templates valid, checked against the map and fleet: 5 problems"


def test_one_file_and_a_flat_capability_list(tmp_path: Path) -> None:
    """A single file may be checked; a capability without a kind serves any kind."""
    f = tmp_path / "one.yaml"
    f.write_text("name: o\nversion: 1\nsteps: [{id: p, kind: human, capabilities: [picking],"
                 " location: dock}]\n")
    out = _check("--templates", str(f), "--capabilities", "picking", "--map", "none")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 of 1 templates valid, checked against the fleet: no problems" in out.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """A missing directory, an unreadable map or a bad --capabilities: one stderr line, 2."""
    for args, says in (
            (("--templates", str(tmp_path / "nope")), f"{tmp_path / 'nope'}: no such file"),
            (("--map", str(tmp_path / "no.yaml")), f"--map {tmp_path / 'no.yaml'}"),
            (("--capabilities", "tank:lift"), "must be robot, human or ai"),
            (("--capabilities", ","), "--capabilities is empty"),
    ):
        out = _check(*args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert out.stdout == ""
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("fleetflow templates: "), out.stderr
        assert says in lines[0]
