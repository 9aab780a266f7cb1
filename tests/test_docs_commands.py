"""Every ``fleetflow …`` command shown in a fenced block of README.md and docs/*.md runs
against a real stack (one ``fleetflow up`` on free ports), so the docs cannot drift from the
code: each exits 0, or with the status its block shows (``$ echo $?`` then the number, or
a ``fleetflow CMD: …`` error line right after it: 2).

The stack's data dir is ``WORK/.fleetflow`` and the commands run in ``WORK`` (beside links
to the repository's ``scenarios``, ``templates``, ``maps``, ``scripts`` and ``.venv``), so
the docs' relative paths (``.fleetflow/hub``, ``scenarios/smoke.yaml``) are the stack's.
Commands that cannot run here are listed in ``SKIPS`` with the reason, by pattern; the
docs' placeholders (``DIR``, ``DATA``, ``/etc/...``) are replaced as ``PLACEHOLDERS`` says.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from up_rig import ROOT, Up

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

WORKFLOW = "docs-wf-1"
"""A workflow the stack fixture creates, for the docs' ``ID`` placeholders."""

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
"""The documents whose fenced blocks are collected."""

SKIPS: list[tuple[str, str]] = [
    (r"^fleetflow up\b", "a long-running server (the stack this test runs is one)"),
    (r"^fleetflow broker(?! (passwd|mosquitto-config)\b)", "a long-running server"),
    (r"^fleetflow edge(?! (backup|verify)\b)", "a long-running server (the stack runs two edges)"),
    (r"^fleetflow edge verify\b", "needs a stopped edge's store (the stack's edges run)"),
    (r"^fleetflow hub(?! token\b)", "a long-running server (the stack runs the hub)"),
    (r"^fleetflow dashboard\b", "a long-running server (the stack runs the dashboard)"),
    (r"^fleetflow wf watch\b(?!.*--(for|workflow)\b)",
     "follows the live stream until Ctrl-C (`--for S` and `--workflow ID` forms end, and run)"),
    (r"^fleetflow bench (?!.*--quick)", "a full benchmark run takes minutes; the --quick "
                                       "forms run"),
    (r"^fleetflow sim --replay \S+ --templates changed/",
     "needs the worked example's changed template directory"),
]
"""(regex on the command after placeholders, reason): commands not run here, and why."""

PLACEHOLDERS: list[tuple[str, str]] = [
    (r"^\.venv/bin/python -m fleetflow ", "fleetflow "),  # the same program
    (r"\[[^\]]*\]", ""),  # an optional part of a synopsis: run without it
    (r"(fleetflow hub token .*--data )DIR\b", r"\1.fleetflow/hub"),
    (r"(mosquitto-config )DIR\b", r"\1mosquitto-bridge"),
    (r"/etc/mosquitto/fleetflow", "mosquitto-conf"),
    (r"/backups/", "backups/"),
    (r"(--replay )(DATA|data)\b", r"\1.fleetflow/edge-north"),
    (r"(?<=\s)(ID|WORKFLOW_ID|WF_ID)\b", WORKFLOW),  # `wf show ID` and the like
]
"""(regex, replacement) applied in order to each command before it runs."""

_PROMPT = "$ "
_ERROR_LINE = re.compile(r"^fleetflow [a-z][\w-]*: ")
_COMMAND = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:\.venv/bin/python -m )?fleetflow\s")


@dataclass(frozen=True)
class DocCommand:
    """One ``fleetflow`` command of a fenced block: where it is, and what it must exit."""

    where: str
    """``docs/FILE.md:LINE`` of its first line."""
    line: str
    """The command as written (continuation lines joined, trailing comment dropped)."""
    status: int
    """The exit status the block shows for it (0 unless it shows another)."""


def _strip_comment(line: str) -> str:
    """``line`` without a trailing ``# …`` comment outside quotes."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def _blocks(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, lines) of each fenced block that is not Python (doctests run
    under ``pytest docs README.md``)."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = lines[i].strip()
        if fence.startswith("```"):
            lang = fence[3:].strip()
            start, i = i + 2, i + 1
            body = []
            while i < len(lines) and not lines[i].strip().startswith("```"):
                body.append(lines[i])
                i += 1
            if lang not in ("python", "py", "pycon"):
                yield start, body
        i += 1


def _commands_of(doc: str, first: int, body: list[str]) -> Iterator[DocCommand]:
    """The ``fleetflow`` commands of one block and the status each must exit with."""
    prompted = any(ln.startswith(_PROMPT) for ln in body)
    i = 0
    while i < len(body):
        raw, at = body[i], first + i
        text = raw[len(_PROMPT):] if prompted and raw.startswith(_PROMPT) else raw
        if (prompted and not raw.startswith(_PROMPT)) or _ERROR_LINE.match(text) \
                or not _COMMAND.match(text.strip()):
            i += 1
            continue
        parts = [text.strip()]
        while parts[-1].endswith("\\") and i + 1 < len(body):
            parts[-1] = parts[-1][:-1].rstrip()
            i += 1
            parts.append(body[i].strip())
        i += 1
        status = 0
        following = body[i:]
        if prompted:  # `$ echo $?` and the number, before the next other command
            for k, ln in enumerate(following):
                if ln.strip() == "$ echo $?" and k + 1 < len(following):
                    status = int(following[k + 1].strip())
                    break
                if ln.startswith(_PROMPT):
                    break
        if following and _ERROR_LINE.match(following[0].strip()):
            status = 2
        yield DocCommand(f"{doc}:{at}", _strip_comment(" ".join(parts)), status)


def collect() -> list[DocCommand]:
    """Every ``fleetflow`` command of README.md and docs/*.md, in document order."""
    found: list[DocCommand] = []
    for path in DOCS:
        doc = str(path.relative_to(ROOT))
        for first, body in _blocks(path.read_text()):
            found.extend(_commands_of(doc, first, body))
    return found


def runnable(line: str) -> tuple[str, str | None]:
    """The command with its placeholders replaced, and why it is skipped (None: it runs)."""
    for pattern, replacement in PLACEHOLDERS:
        line = re.sub(pattern, replacement, line)
    line = re.sub(r"\s+", " ", line).strip()
    bare = re.sub(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*", "", line)  # without VAR=… in front
    for pattern, reason in SKIPS:
        if re.search(pattern, bare):
            return line, reason
    return line, None


COMMANDS = collect()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Up, Path, dict[str, str]]]:
    """One ``fleetflow up`` with its data dir at ``WORK/.fleetflow``; (stack, WORK, env)."""
    tmp = tmp_path_factory.mktemp("docs")
    work = tmp / "work"
    work.mkdir()
    for name in ("scenarios", "templates", "maps", "scripts", ".venv"):
        if (ROOT / name).exists():
            (work / name).symlink_to(ROOT / name)
    with Up(tmp, data=work / ".fleetflow") as up:  # `make up`'s defaults: what the docs show
        up.wait_ready()
        with up.client() as api:  # for the docs' `wf show ID` and the like
            r = api.post("/api/v1/workflows", json={
                "facility": "north", "template": "pick_and_deliver", "workflow_id": WORKFLOW})
            assert r.status_code in (200, 201, 202), r.text
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETFLOW_")}
        env.update({
            "PATH": f"{ROOT / '.venv' / 'bin'}:/usr/sbin:{env.get('PATH', '')}",
            "FLEETFLOW_BROKER_PORT": str(up.mqtt_port),
            "FLEETFLOW_BROKER": f"mqtt://127.0.0.1:{up.mqtt_port}",
            "FLEETFLOW_API_PORT": str(up.api_port),
            "FLEETFLOW_HUB_PORT": str(up.api_port),
            "FLEETFLOW_API_URL": up.api,
            "FLEETFLOW_API_TOKEN": up.token(),
            "FLEETFLOW_TOKEN": up.token(),
            "FLEETFLOW_DASHBOARD_PORT": str(up.dashboard_port),
        })
        yield up, work, env
        up.stop()


def test_the_docs_show_fleetflow_commands() -> None:
    """The collector finds the documented commands (a broken collector would pass vacuously)."""
    wheres = {c.where.split(":")[0] for c in COMMANDS}
    assert len(COMMANDS) >= 20, COMMANDS
    assert {"docs/broker.md", "docs/hub.md", "docs/simulator.md", "docs/store.md"} <= wheres


@pytest.mark.parametrize("command", COMMANDS, ids=[c.where for c in COMMANDS])
def test_documented_command_runs(command: DocCommand,
                                 stack: tuple[Up, Path, dict[str, str]]) -> None:
    """The documented command exits with the status its block shows, against the stack."""
    up, work, env = stack
    line, skipped = runnable(command.line)
    if skipped:
        pytest.skip(f"{line!r}: {skipped}")
    assert up.proc is not None and up.proc.poll() is None, f"the stack died:\n{up.errors}"
    run = subprocess.run(["bash", "-c", line], cwd=work, env=env, capture_output=True,
                         text=True, timeout=300, input="docs-test-password\n")
    assert run.returncode == command.status, (
        f"{command.where}: `{line}` exited {run.returncode}, the doc shows "
        f"{command.status}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
