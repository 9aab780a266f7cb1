"""The newcomer's first minute: a fresh data dir, ``fleetflow up``, then only ``fleetflow
wf`` commands run from that directory — no token or data flag, as a user following the
README would — see a ``pick_and_deliver`` workflow through to its end."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from up_rig import PYTHON, Up

pytestmark = pytest.mark.slow

_STEPS = ("pick", "load", "deliver")  # templates/pick_and_deliver.yaml


def _wf(up: Up, cwd: Path, *argv: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``fleetflow wf ARGV`` as a separate process in ``cwd``; only the API's URL is given
    (the test's ports are random), the token is the one ``up`` left in ``.fleetflow``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("FLEETFLOW_TOKEN", "FLEETFLOW_DATA", "NO_COLOR")}
    env["FLEETFLOW_API_URL"] = up.api
    return subprocess.run([PYTHON, "-m", "fleetflow", "wf", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=max(timeout, 1.0))


def test_a_workflow_runs_in_the_first_minute(tmp_path: Path) -> None:
    """Within 60 s of `up` being ready: `wf create pick_and_deliver` prints an id, `wf
    watch --workflow ID` follows it to `workflow_completed` and exits 0, `wf show ID`
    prints each step done with its agent; `up` itself printed the same completion."""
    with Up(tmp_path, data=tmp_path / ".fleetflow") as up:
        up.wait_ready()
        ready = time.monotonic()

        def left() -> float:
            return 60.0 - (time.monotonic() - ready)

        created = _wf(up, tmp_path, "create", "pick_and_deliver", timeout=left())
        assert created.returncode == 0, created.stderr
        wid = created.stdout.strip()
        assert wid and "\n" not in wid, created.stdout

        watched = _wf(up, tmp_path, "watch", "--workflow", wid, timeout=left())
        assert watched.returncode == 0, watched.stderr
        lines = watched.stdout.splitlines()
        assert f"{wid} workflow_created pick_and_deliver" in lines[0]
        assert lines[-1].split(" ", 3)[3] == f"{wid} workflow_completed", watched.stdout
        for step in _STEPS:
            assert any(f"{wid} step_done {step} by " in line for line in lines), step

        shown = _wf(up, tmp_path, "show", wid, timeout=left())
        assert shown.returncode == 0, shown.stderr
        assert "state     completed" in shown.stdout
        for step in _STEPS:
            row = next(line for line in shown.stdout.splitlines()
                       if line.split()[:1] == [step])
            assert " done " in row and " by " in row, shown.stdout
        assert left() > 0, f"took {60 - left():.0f} s after ready"

        deadline = time.monotonic() + 10  # `up`'s own lines: the same stream, same formatter
        while f"{wid} workflow_completed" not in up.output:
            assert time.monotonic() < deadline, up.output[-3000:]
            time.sleep(0.2)
        assert up.stop() == 0
