"""Template errors of ``fleetflow edge`` and ``fleetflow up``, and ``mosquitto-config``'s rough
edges: one line, exit 2, the file's full path and what is wrong."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker import PasswordFile, existing_bridge, mosquitto
from edge_runtime.core import Append, Core
from edge_runtime.store import EventStore, store_path
from edge_runtime.templates import load_templates
from edge_runtime.testing import ScriptedFleet
from tests.conftest import free_port
from tests.test_cli_errors import REPO, cli, one_line_exit_2

BROKEN = {
    "yaml": ("name: x\nversion: 1\nsteps: [\n", "not valid YAML/JSON: line 4, column 1"),
    "kind": ("name: x\nversion: 1\nsteps: [{id: s, kind: bogus, duration_s: 1}]\n",
             "steps[0].kind"),
    "after": ("name: x\nversion: 1\nsteps: [{id: s, kind: wait, duration_s: 1, after: [nope]}]\n",
              "steps[0].after: unknown step 'nope'"),
    "cel": ("name: x\nversion: 1\nsteps: [{id: s, kind: wait, duration_s: 1, when: '1 +* ('}]"
            "\n", "steps[0].when: CEL expression"),
}
EDGE = ("edge", "--facility", "t1", "--broker", "mqtt://127.0.0.1:9")


@pytest.mark.parametrize("fault", sorted(BROKEN))
def test_a_bad_template_is_one_line_with_its_full_path(tmp_path: Path, fault: str) -> None:
    """A YAML error, an unknown kind, an unknown `after` step, bad CEL: one line naming the
    template's full path and what is wrong, exit 2, for `edge` and for `up`."""
    text, says = BROKEN[fault]
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "broken.yaml").write_text(text)
    line = one_line_exit_2(cli(*EDGE, "--data", str(tmp_path / "d"),
                               "--templates", str(tmp_path / "t")))
    assert f"{tmp_path / 't' / 'broken.yaml'}: " in line and says in line
    assert not (tmp_path / "d").exists()
    line = one_line_exit_2(cli("up", "--data", str(tmp_path / "u"),
                               "--templates", str(tmp_path / "t")))
    assert f"{tmp_path / 't' / 'broken.yaml'}: " in line and says in line


def test_templates_missing_or_a_file_is_one_line(tmp_path: Path) -> None:
    """--templates naming a missing directory or a file: one line, exit 2, never zero
    templates without a word."""
    line = one_line_exit_2(cli(*EDGE, "--data", str(tmp_path / "d"),
                               "--templates", str(tmp_path / "none")))
    assert line == (f"fleetflow edge: --templates: templates directory {tmp_path / 'none'} "
                    "does not exist")
    (tmp_path / "f.yaml").write_text("name: x\n")
    line = one_line_exit_2(cli(*EDGE, "--data", str(tmp_path / "d"),
                               "--templates", str(tmp_path / "f.yaml")))
    assert f"{tmp_path / 'f.yaml'} is a file, not a directory" in line
    line = one_line_exit_2(cli("hub", "--data", str(tmp_path / "h"), "--port", "0",
                               "--templates", str(tmp_path / "none")))
    assert f"--templates: templates directory {tmp_path / 'none'} does not exist" in line


def test_default_templates_dir_says_where_it_looked(tmp_path: Path) -> None:
    """Without --templates, in a directory with no ./templates: one line naming the
    directory looked in and the flag."""
    line = one_line_exit_2(cli(*EDGE, "--data", str(tmp_path / "d"), cwd=tmp_path))
    assert str(tmp_path / "templates") in line and "--templates DIR" in line


def test_restart_with_other_templates_is_one_line(tmp_path: Path) -> None:
    """A store whose workflows use a template the new --templates lacks: one line naming
    the dir, the store and the template, exit 2."""
    data = tmp_path / "d"
    path = store_path(data)
    path.parent.mkdir(parents=True)
    store = EventStore(path, "t1")
    fleet = ScriptedFleet(Core("t1", load_templates(REPO / "templates")))
    fleet.create("pick_and_deliver", "wf-1")
    store.append([e.event for e in fleet.effects if isinstance(e, Append)])
    store.close()
    other = tmp_path / "other"
    other.mkdir()
    (other / "o.yaml").write_text("name: other\nversion: 1\n"
                                  "steps: [{id: s, kind: wait, duration_s: 1}]\n")
    line = one_line_exit_2(cli(*EDGE, "--data", str(data), "--templates", str(other)))
    assert f"--templates {other} does not fit the store in {data}" in line
    assert "pick_and_deliver@1" in line


# --- mosquitto-config ---------------------------------------------------------------------
@pytest.fixture
def users(tmp_path: Path) -> Path:
    """A broker user file with the hub."""
    r = cli("broker", "passwd", "add", "hub", "--role", "hub", "--password", "pw",
            "--passwd", str(tmp_path / "users"))
    assert r.returncode == 0, r.stderr
    return tmp_path / "users"


def test_mosquitto_config_keeps_an_existing_bridge(tmp_path: Path, users: Path) -> None:
    """Written again without the bridge flags, the config keeps its bridge (and says so);
    --no-bridge drops it."""
    out = tmp_path / "mq"
    base = ("broker", "mosquitto-config", str(out), "--passwd", str(users))
    r = cli(*base, "--bridge-to", "cloud:1883", "--facility", "f1", "--bridge-user",
            "edge-f1", "--bridge-password", "pw")
    assert r.returncode == 0, r.stderr
    r = cli(*base)
    assert r.returncode == 0 and "kept the bridge to cloud:1883" in r.stdout
    assert "address cloud:1883" in (existing_bridge(out) or "")
    r = cli(*base, "--no-bridge")
    assert r.returncode == 0 and existing_bridge(out) is None
    line = one_line_exit_2(cli(*base, "--no-bridge", "--bridge-to", "c:1", "--facility", "f",
                               "--bridge-user", "u", "--bridge-password", "p"))
    assert "--no-bridge" in line


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A directory user `mosquitto` can reach (pytest's tmp dirs are root's alone)."""
    d = Path(tempfile.mkdtemp(prefix="ff-mq-", dir="/tmp"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_mosquitto_config_runs_as_printed_when_root(world_dir: Path, mosquitto_bin: str,
                                                    tmp_path: Path) -> None:
    """Written by root, the files belong to the user Mosquitto drops to, so the printed
    command starts a broker that reads them."""
    if os.geteuid() != 0:
        pytest.skip("only root can give the files to user mosquitto")
    r = cli("broker", "passwd", "add", "hub", "--role", "hub", "--password", "pw",
            "--passwd", str(tmp_path / "users"))
    assert r.returncode == 0, r.stderr
    PasswordFile(tmp_path / "users").users()
    port = free_port()
    r = cli("broker", "mosquitto-config", str(world_dir / "mq"), "--passwd",
            str(tmp_path / "users"), "--port", str(port), "--listen", "127.0.0.1")
    assert r.returncode == 0, r.stderr
    conf = world_dir / "mq" / "mosquitto.conf"
    assert f"mosquitto -c {conf}" in r.stdout
    with mosquitto(conf, port, mosquitto_bin) as proc:
        assert proc.poll() is None
