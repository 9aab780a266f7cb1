"""The live smoke script (scripts/test_workflow_state_management.sh) against `fleetflow up`:
what `.ci/run` does after `make test`, inside the suite so that `make test` covers it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from up_rig import ROOT, SCRIPT, Up, wait_gone

pytestmark = [pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
              pytest.mark.timeout(420)]

CHECKS = ("health", "auth", "create", "get", "list", "update", "dependencies", "coordination",
          "checkpoint", "recover", "sync arrival", "agent workflows", "conflicts",
          "performance", "state sync", "websocket", "cancel")


def _script(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)


def test_smoke_script_passes_against_fleetflow_up(tmp_path: Path) -> None:
    """Every check of the smoke script passes against a fresh `up` (token read from the
    data dir), exit 0; the stack then stops cleanly."""
    with Up(tmp_path) as up:
        up.wait_ready()
        run = _script({"FLEETFLOW_API": up.api, "FLEETFLOW_DATA": str(up.data)})
        assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
        oks = [line for line in run.stdout.splitlines() if line.startswith("ok ")]
        for check in CHECKS:
            assert any(line.startswith(f"ok {check}") for line in oks), (check, run.stdout)
        assert run.stdout.rstrip().endswith(f"all checks passed against {up.api}")
        assert up.stop() == 0
    wait_gone(str(up.data))


def test_smoke_script_fails_loudly(tmp_path: Path) -> None:
    """A refused token, or no hub at all: exit non-zero with the answer on stderr."""
    with Up(tmp_path, "--agents", "0") as up:
        up.wait_ready()
        bad = _script({"FLEETFLOW_API": up.api, "FLEETFLOW_TOKEN": "ff_000000000000_" + "x" * 43})
        assert bad.returncode != 0
        assert "FAIL" in bad.stderr and "HTTP 401" in bad.stderr and "unauthorized" in bad.stderr
        assert up.stop() == 0
    gone = _script({"FLEETFLOW_API": up.api, "FLEETFLOW_DATA": str(up.data)})
    assert gone.returncode != 0 and f"cannot reach {up.api}" in gone.stderr
    missing = _script({"FLEETFLOW_API": up.api, "FLEETFLOW_DATA": str(tmp_path / "none")})
    assert missing.returncode != 0 and "no token" in missing.stderr
