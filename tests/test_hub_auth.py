"""The hub's API tokens: hashed storage, roles, checks, and `fleetflow hub token` as a
process; the hub's MQTT identity with the broker's `hub` role."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import stat
import subprocess
import sys
import threading
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from broker import BrokerProcess, free_port
from cloud_hub import Role, TokenError, TokenStore
from cloud_hub._auth import ACTION_ROLES, role_for_action
from cloud_hub._auth_logs import install_token_redaction, redact
from tests.test_broker_enforcement import Client
from topics import HubCommand

REPO = Path(__file__).resolve().parents[1]


def hub_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``fleetflow hub ARGS`` as a process."""
    return subprocess.run([sys.executable, "-m", "fleetflow", "hub", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    """An empty token store in a fresh hub data directory."""
    return TokenStore.in_dir(tmp_path / "hub")


def test_file_keeps_only_hashes(store: TokenStore) -> None:
    """The token file (mode 0600) holds each token's sha256, never the token or its secret."""
    token = store.create("alice", "planner")
    text = store.path.read_text()
    secret = token.rsplit("_", 1)[-1]
    assert token not in text and secret not in text
    assert hashlib.sha256(token.encode()).hexdigest() in text
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert json.loads(text)["tokens"][0]["role"] == "planner"


def test_token_shape(store: TokenStore) -> None:
    """A token is ff_<12 hex id>_<43-character secret>, and each one differs."""
    a, b = store.create("a", "viewer"), store.create("b", "viewer")
    prefix, token_id, secret = a.split("_", 2)
    assert prefix == "ff" and len(token_id) == 12 and len(secret) == 43
    assert a != b and a.split("_")[1] != b.split("_")[1]


def test_check_accepts_only_the_issued_token(store: TokenStore) -> None:
    """The issued token checks as its name and role; a changed, foreign or malformed one
    does not."""
    token = store.create("ops", "supervisor")
    info = store.check(token)
    assert info is not None and (info.name, info.role) == ("ops", Role.supervisor)
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    other = TokenStore.in_dir(store.path.parent / "other").create("ops", "admin")
    for bad in (flipped, other, "", "ff_", token + "x", token.replace("ff_", "xx_"),
                "Bearer " + token, token[:-5]):
        assert store.check(bad) is None, bad


def test_role_order() -> None:
    """viewer < supervisor < planner < admin; each role allows what the lower ones need."""
    order = [Role.viewer, Role.supervisor, Role.planner, Role.admin]
    assert sorted(Role) == order
    for i, have in enumerate(order):
        assert [have.allows(need) for need in order] == [j <= i for j in range(4)]
    assert Role.parse("planner") is Role.planner
    with pytest.raises(TokenError, match="viewer, supervisor, planner, admin"):
        Role.parse("root")


def test_check_compares_in_constant_time(store: TokenStore,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Every check, of a known id or an unknown one, compares digests with
    hmac.compare_digest."""
    token = store.create("ops", "viewer")
    calls: list[tuple[Any, Any]] = []
    real: Callable[[Any, Any], bool] = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert store.check(token) is not None
    assert store.check("ff_000000000000_" + "A" * 43) is None
    assert store.check(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert len(calls) == 3
    assert calls[0] == (hashlib.sha256(token.encode()).hexdigest(),) * 2


def test_bad_input_changes_nothing(store: TokenStore) -> None:
    """A bad name or role, or a second active token of a name, is refused and the file
    is left as it was."""
    store.create("ops", "admin")
    before = store.path.read_bytes()
    for name, role in (("bad name", "viewer"), ("", "viewer"), ("x" * 65, "viewer"),
                       ("a/b", "viewer"), ("ok", "root"), ("ops", "viewer")):
        with pytest.raises(TokenError):
            store.create(name, role)
    with pytest.raises(TokenError, match="no active token"):
        store.revoke("nobody")
    assert store.path.read_bytes() == before


def test_revoke_and_replace(store: TokenStore) -> None:
    """A revoked token is refused; --replace revokes the old token of a name and issues a
    new one; a revoked name may be issued again."""
    old = store.create("ops", "viewer")
    new = store.create("ops", "planner", replace=True)
    assert store.check(old) is None
    info = store.check(new)
    assert info is not None and info.role is Role.planner
    store.revoke("ops")
    assert store.check(new) is None
    again = store.create("ops", "viewer")
    assert store.check(again) is not None and [t.name for t in store.tokens()] == ["ops"]


def test_running_checker_sees_changes_without_restart(store: TokenStore) -> None:
    """A store that is checking (the hub) sees tokens created and revoked through another
    (the CLI) at its next check."""
    running = TokenStore(store.path)
    assert running.check("ff_000000000000_" + "A" * 43) is None
    token = store.create("ops", "viewer")
    assert running.check(token) is not None
    store.revoke("ops")
    assert running.check(token) is None


def test_corrupt_file_fails_closed(store: TokenStore) -> None:
    """A token file that is not ours makes every check raise rather than let anyone in."""
    token = store.create("ops", "admin")
    store.path.write_text('{"tokens": [{"id": "zz"}]}')
    with pytest.raises(TokenError, match="not a Fleetflow token file"):
        TokenStore(store.path).check(token)
    store.path.write_text("not json")
    with pytest.raises(TokenError):
        store.check(token)


def test_cli_create_list_revoke(tmp_path: Path) -> None:
    """`hub token create` prints the token alone on stdout, `list` shows records without
    secrets, `revoke` makes the token fail its check."""
    data = str(tmp_path / "hub")
    made = hub_cli("token", "create", "--data", data, "--name", "alice", "--role", "planner")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert made.stdout.count("\n") == 1 and token.startswith("ff_")
    assert "shown only this once" in made.stderr and token not in made.stderr
    assert TokenStore.in_dir(Path(data)).check(token) is not None

    listed = hub_cli("token", "list", "--data", data)
    assert listed.returncode == 0 and token.split("_", 2)[2] not in listed.stdout
    assert listed.stdout.split("\n")[1].split()[:2] == ["alice", "planner"]
    as_json = json.loads(hub_cli("token", "list", "--data", data, "--json").stdout)
    assert as_json[0]["name"] == "alice" and as_json[0]["revoked_at"] is None

    revoked = hub_cli("token", "revoke", "alice", "--data", data)
    assert revoked.returncode == 0 and "revoked alice" in revoked.stdout
    assert TokenStore.in_dir(Path(data)).check(token) is None
    assert json.loads(hub_cli("token", "list", "--data", data, "--json").stdout)[0][
        "revoked_at"]


def test_cli_bad_input_exit_2(tmp_path: Path) -> None:
    """Unknown role, taken name, bad name or unknown revoke: one line, exit status 2,
    the token file unchanged."""
    data = str(tmp_path / "hub")
    assert hub_cli("token", "create", "--data", data, "--name", "ops",
                   "--role", "admin").returncode == 0
    before = (tmp_path / "hub" / "tokens.json").read_bytes()
    for args in (["create", "--name", "x", "--role", "root"],
                 ["create", "--name", "ops", "--role", "viewer"],
                 ["create", "--name", "bad name", "--role", "viewer"],
                 ["revoke", "nobody"]):
        r = hub_cli("token", *args, "--data", data)
        assert r.returncode == 2 and r.stdout == "", (args, r)
        assert "Traceback" not in r.stderr and r.stderr.strip(), args
    assert (tmp_path / "hub" / "tokens.json").read_bytes() == before


def test_concurrent_creates_keep_every_token(tmp_path: Path) -> None:
    """Eight writers, each with its own store on one file (as separate `token create`
    processes), creating at once: the file lock keeps all their tokens."""
    path = tmp_path / "hub" / "tokens.json"
    start = threading.Barrier(8)
    made: list[str] = []

    def writer(n: int) -> None:
        own = TokenStore(path)
        start.wait()
        made.extend(own.create(f"u{n}-{i}", "viewer") for i in range(10))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    store = TokenStore(path)
    assert len(made) == 80 and all(store.check(t) is not None for t in made)
    assert len(store.tokens()) == 80


def test_cli_data_dir_from_env(tmp_path: Path) -> None:
    """Without --data, FLEETFLOW_HUB_DATA names the hub's data directory."""
    r = hub_cli("token", "create", "--name", "ops", "--role", "viewer",
                env={"FLEETFLOW_HUB_DATA": str(tmp_path / "h")})
    assert r.returncode == 0, r.stderr
    assert TokenStore.in_dir(tmp_path / "h").check(r.stdout.strip()) is not None


def test_hub_mqtt_identity_has_hub_role(tmp_path: Path) -> None:
    """A user added with `broker passwd add --role hub` reads every facility's edge events
    and writes edge commands, but may not read agents' topics."""
    passwd = tmp_path / "passwd"
    for name, extra in (("hub", ["--role", "hub"]),
                        ("edge-F1", ["--role", "edge", "--facility", "F1"])):
        r = subprocess.run([sys.executable, "-m", "fleetflow", "broker", "passwd", "add",
                            name, *extra, "--password", f"pw-{name}", "--passwd", str(passwd),
                            "--iterations", "50"], cwd=REPO, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
    port = free_port()
    with BrokerProcess("127.0.0.1", port, passwd):
        hub, edge = Client(port, "hub", "pw-hub"), Client(port, "edge-F1", "pw-edge-F1")
        try:
            assert hub.rc == 0 and edge.rc == 0
            assert hub.subscribe("fleetflow/v1/+/edge/events") == [1]
            assert hub.subscribe("fleetflow/v1/F1/agent/+/state") == [0x80]
            assert edge.subscribe("fleetflow/v1/F1/edge/cmd") == [1]
            edge.publish("fleetflow/v1/F1/edge/events", b"e1")
            assert hub.next() == ("fleetflow/v1/F1/edge/events", b"e1")
            hub.publish("fleetflow/v1/F1/edge/cmd", b"c1")
            assert edge.next() == ("fleetflow/v1/F1/edge/cmd", b"c1")
        finally:
            hub.close()
            edge.close()


def test_redact_forms() -> None:
    """Token secrets and Authorization header values are redacted in the forms libraries
    log them; a token's id stays, to tell which one was used."""
    token = "ff_0123456789ab_" + "x" * 43
    assert redact(f"used {token} here") == "used ff_0123456789ab_[redacted] here"
    assert redact(f"< authorization: Bearer {token}") == "< authorization: [redacted]"
    assert redact("(b'authorization', b'Basic dTpw')") == "(b'authorization', b'[redacted]')"
    assert redact("{'Authorization': 'Bearer abc'}") == "{'Authorization': '[redacted]'}"
    assert redact("GET /api/v1/workflows 200") == "GET /api/v1/workflows 200"


def test_log_records_are_redacted(store: TokenStore, caplog: pytest.LogCaptureFixture) -> None:
    """Once installed, a record that any logger makes with a token in its arguments is
    stored redacted."""
    token = store.create("ops", "admin")
    install_token_redaction()
    caplog.set_level(logging.DEBUG)
    logging.getLogger("some.library").debug("headers: %s", [(b"authorization", token.encode())])
    logging.getLogger("other").info("token %s", token)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["headers: [(b'authorization', b'[redacted]')]",
                        f"token {token[:16]}[redacted]"]


def test_every_edge_command_has_a_role() -> None:
    """Each action the protocol lets the hub send has an explicit least role; one that
    nobody classified needs admin."""
    actions = typing.get_args(HubCommand.model_fields["action"].annotation)
    assert actions and set(actions) <= set(ACTION_ROLES)
    assert role_for_action("something_new") is Role.admin


def test_action_roles_follow_the_policy() -> None:
    """Supervisors hold, release, settle and stop; planners create, reshape, cancel and
    recover; viewers only read."""
    by_role = {role: {a for a, r in ACTION_ROLES.items() if r is role} for role in Role}
    assert {"pause_workflow", "resume_workflow", "resolve_conflict", "sync_arrival",
            "facility_stop", "facility_release"} <= by_role[Role.supervisor]
    assert {"create_workflow", "update_workflow", "cancel_workflow", "add_dependency",
            "set_coordination", "checkpoint", "recover", "operator_action",
            "batch"} <= by_role[Role.planner]
    assert by_role[Role.viewer] == {"list_checkpoints"}
