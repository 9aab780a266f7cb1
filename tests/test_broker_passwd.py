"""The user file and its Mosquitto-compatible ``$7$`` hashes."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker import Identity, PasswdError, PasswordFile, hash_password, verify_password
from tests.conftest import require_tool

REPO = Path(__file__).resolve().parents[1]


@settings(max_examples=25, deadline=None)
@given(password=st.text(min_size=1, max_size=40), other=st.text(min_size=1, max_size=40))
def test_hash_verifies_only_its_password(password: str, other: str) -> None:
    """A hash verifies its own password and no other."""
    hashed = hash_password(password, iterations=3)
    assert verify_password(password, hashed)
    assert verify_password(other, hashed) is (other == password)


def test_hash_has_mosquitto_layout() -> None:
    """$7$, iterations, 12-byte salt and 64-byte digest in base64, as mosquitto_passwd."""
    _, seven, iterations, salt, digest = hash_password("x", iterations=101).split("$")
    assert (seven, iterations, len(salt), len(digest)) == ("7", "101", 16, 88)


def test_hashes_of_mosquitto_passwd_verify(tmp_path: Path) -> None:
    """A hash written by the real mosquitto_passwd verifies here (and the wrong one does not)."""
    tool = require_tool("mosquitto_passwd", "apt-get install mosquitto")
    pw = tmp_path / "pw"
    pw.touch()
    subprocess.run([tool, "-b", str(pw), "alice", "s3cret"], check=True)
    hashed = pw.read_text().strip().split(":", 1)[1]
    assert hashed.startswith("$7$101$")
    assert verify_password("s3cret", hashed)
    assert not verify_password("s3cret!", hashed)


@pytest.mark.parametrize("bad", ["", "$6$abc$def", "$7$x$AAAA$BBBB", "$7$10$!!$AAAA", "$7$0$AA$AA"])
def test_malformed_hashes_never_verify(bad: str) -> None:
    """Garbage in the hash field denies the login instead of raising."""
    assert not verify_password("anything", bad)


def test_file_is_private_and_round_trips(tmp_path: Path) -> None:
    """Users survive a write and a read; the file is mode 0600 and replaced atomically."""
    pf = PasswordFile(tmp_path / "sub" / "passwd")
    pf.add(Identity("a1", "agent", facility="F1"), "pw1", iterations=5)
    pf.add(Identity("truck", "agv", manufacturer="Acme", serial="S7"), "pw2", iterations=5)
    assert stat.S_IMODE(pf.path.stat().st_mode) == 0o600
    assert [u.identity for u in PasswordFile(pf.path).users()] == [
        Identity("a1", "agent", facility="F1"),
        Identity("truck", "agv", manufacturer="Acme", serial="S7"),
    ]
    assert pf.check("truck", "pw2") is not None and pf.check("truck", "pw1") is None
    assert sorted(p.name for p in pf.path.parent.iterdir()) == ["passwd", "passwd.lock"]


def test_add_replaces_and_remove_deletes(tmp_path: Path) -> None:
    """Adding an existing name replaces it; removing an unknown name is an error."""
    pf = PasswordFile(tmp_path / "passwd")
    pf.add(Identity("x", "admin"), "old", iterations=5)
    pf.add(Identity("x", "hub"), "new", iterations=5)
    assert pf.check("x", "new") == Identity("x", "hub")
    pf.remove("x")
    assert pf.users() == []
    with pytest.raises(PasswdError, match="no user 'x'"):
        pf.remove("x")


def test_empty_password_is_refused(tmp_path: Path) -> None:
    """An empty password is refused and nothing is written."""
    pf = PasswordFile(tmp_path / "passwd")
    with pytest.raises(PasswdError):
        pf.add(Identity("x", "admin"), "")
    assert not pf.path.exists()


@pytest.mark.parametrize(
    ("text", "match"),
    [("users: [1, 2]", "no 'users' mapping"), (": : :", "not valid YAML"),
     ("users:\n  x: {role: god, hash: $7$1$AA$AA}", "role 'god'"),
     ("users:\n  x: {role: agent, hash: $7$1$AA$AA}", "needs a facility"),
     ("users:\n  x: {role: admin, hash: plain}", "no \\$7\\$ password hash"),
     ("users:\n  x: {role: admin, hash: $7$1$AA$AA, colour: red}", "unknown keys")],
)
def test_broken_files_give_clear_errors(tmp_path: Path, text: str, match: str) -> None:
    """A hand-edited file that is wrong names the problem."""
    path = tmp_path / "passwd"
    path.write_text(text)
    with pytest.raises(PasswdError, match=match):
        PasswordFile(path).users()


def test_mosquitto_passwd_lines(tmp_path: Path) -> None:
    """The Mosquitto password file is `name:hash` per user."""
    pf = PasswordFile(tmp_path / "passwd")
    user = pf.add(Identity("h", "hub"), "pw", iterations=5)
    assert pf.mosquitto_passwd() == f"h:{user.password_hash}\n"


def _cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleetflow", "broker", *args], cwd=REPO,
                          input=stdin, capture_output=True, text=True, timeout=60)


def test_cli_add_list_remove(tmp_path: Path) -> None:
    """`passwd add` (password from stdin), `list` and `remove` work on the file."""
    f = str(tmp_path / "passwd")
    r = _cli("passwd", "add", "truck", "--role", "agv", "--manufacturer", "Acme",
             "--serial", "S7", "--passwd", f, stdin="secret\n")
    assert r.returncode == 0, r.stderr
    assert PasswordFile(f).check("truck", "secret") is not None
    assert _cli("passwd", "add", "a1", "--role", "agent", "--facility", "F1",
                "--password", "p", "--passwd", f).returncode == 0
    listing = _cli("--passwd", f, "passwd", "list").stdout.splitlines()
    assert listing == ["a1\tagent\tfacility=F1", "truck\tagv\tmanufacturer=Acme serial=S7"]
    assert _cli("passwd", "remove", "a1", "--passwd", f).returncode == 0
    assert [u.identity.name for u in PasswordFile(f).users()] == ["truck"]


def test_cli_bad_user_is_one_line_exit_2(tmp_path: Path) -> None:
    """A bad user name is one line on stderr, exit 2, and the file is untouched."""
    f = tmp_path / "passwd"
    r = _cli("passwd", "add", "a/b", "--role", "agent", "--facility", "F", "--password", "p",
             "--passwd", str(f))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "fleetflow broker: user name 'a/b' contains /, which topics forbid"]
    assert not f.exists()
