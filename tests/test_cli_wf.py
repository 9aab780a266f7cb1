"""``fleetflow wf``: the formatter, the show/list text and the argument handling as units;
then every action against a real stack (Mosquitto, ``fleetflow edge`` processes and a
``fleetflow hub`` process: ``hub_stack``) — create, list, show, pause, resume, cancel,
recover, watch — and their errors: one line on stderr naming what to fix, exit status 2."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hub_stack import PYTHON, ROOT, Stack, create, run_stack, wait_for

from fleetflow.__main__ import CliError, build_parser, main
from fleetflow.wf import (
    Api,
    event_line,
    find_token,
    hlc_time,
    parse_data,
    render_show,
    render_table,
    state_path,
    step_agent,
    use_colour,
    waiting_for,
)

HLC = (1_700_000_000_000 << 16) | 3  # 2023-11-14 22:13:20 UTC, counter 3


def _event(kind: str, **data: Any) -> dict[str, Any]:
    return {"facility": "north", "seq": 57, "hlc": HLC, "kind": kind,
            "workflow_id": "north-wf-1", "data": data}


# --- units -------------------------------------------------------------------------------

def test_event_line_reads_as_a_sentence() -> None:
    """A step's completion reads ``HH:MM:SS facility #seq workflow kind step by agent``."""
    line = event_line(_event("step_done", step="fetch", agent="robot-3", outputs={"x": 1}))
    assert line.split(" ", 1)[1] == "north #57 north-wf-1 step_done fetch by robot-3"
    assert line[:8] == time.strftime("%H:%M:%S", time.localtime(1_700_000_000))
    assert hlc_time(HLC) == 1_700_000_000.0


def test_event_line_names_what_matters_per_kind() -> None:
    """Creation names template and priority; a refused command its reason; a failure its
    error; a retry its attempt; an odd event still gives a line."""
    assert event_line(_event("workflow_created", template="pick", priority=5)).endswith(
        "workflow_created pick priority 5")
    refused = _event("command_reply", action="pause_workflow",
                     result={"refused": "stale_command", "reason": "expected seq 4"})
    assert event_line(refused).endswith("command_reply pause_workflow refused: expected seq 4")
    assert event_line(_event("step_failed", step="s", agent="a", error="jammed")).endswith(
        "step_failed s by a error: jammed")
    assert "attempt 2" in event_line(_event("step_retry", step="s", attempt=2))
    assert "north-wf-1 odd" in event_line({**_event("odd"), "data": [1, 2]})
    assert event_line({"kind": "x", "hlc": "bad"}).startswith("--:--:--")


def test_colour_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    """ANSI colour on a TTY only, never piped, never with NO_COLOR set."""
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_colour(Tty()) and not use_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour(Tty())
    done = event_line(_event("workflow_completed"), colour=True)
    assert "\033[32mworkflow_completed\033[0m" in done
    assert "\033[" not in event_line(_event("workflow_completed"), colour=False)


def test_state_path_and_table() -> None:
    """A hierarchical state reads as a path; the table aligns its columns and says when
    the page is not everything."""
    assert state_path("active.executing.step_execution") == \
        "active \u203a executing \u203a step_execution"
    items = [{"id": "w1", "facility": "north", "template": "pick", "state": "active.executing",
              "priority": 3, "steps": [{"state": "done"}, {"state": "pending"}],
              "created_at": 1_700_000_000.0}]
    table = render_table(items, count=7).splitlines()
    assert table[0].split() == ["ID", "FACILITY", "TEMPLATE", "STATE", "PRI", "STEPS", "CREATED"]
    assert table[1].split()[:7] == ["w1", "north", "pick", "active", "\u203a", "executing", "3"]
    assert "1/2" in table[1] and table[-1] == "(1 of 7; --limit shows more)"
    assert render_table([]) == "no workflows match"


def test_show_gives_agents_waiting_for_outputs_and_who() -> None:
    """``show`` names each step's agent (running, from its outputs, or from the trail),
    what a pending step waits for, its outputs, and who sent a command and why."""
    steps: list[dict[str, Any]] = [
        {"id": "fetch", "kind": "robot", "state": "done", "attempt": 1, "agent": None,
         "outputs": {"agent": "r1", "tote": "t-9"}},
        {"id": "carry", "kind": "robot", "state": "executing", "attempt": 2, "agent": "r2",
         "progress": 0.5},
        {"id": "meet", "kind": "sync", "state": "pending"},
        {"id": "pack", "kind": "human", "state": "pending"}]
    template = {"steps": [{"id": "fetch", "after": []}, {"id": "carry", "after": ["fetch"]},
                          {"id": "meet", "after": [], "participants": ["fetch", "carry"]},
                          {"id": "pack", "after": ["meet"]}]}
    wf = {"id": "w1", "template": "t", "version": 1, "facility": "north", "priority": 2,
          "state": "active.executing.step_execution", "steps": steps, "created_at": 1.0,
          "awaiting_operator": []}
    trail = [{**_event("command_reply", action="pause_workflow", result={"state": "pausing"},
                       hub_command={"who": "ann", "reason": "lunch"})},
             _event("step_assigned", step="meet", agent="p7")]
    text = render_show(wf, trail, 9, template)
    assert "state     active \u203a executing \u203a step_execution" in text
    assert "by r1" in text and 'tote="t-9"' in text and "attempt 2  by r2  50%" in text
    assert "waiting for carry" in text and "waiting for meet" in text
    assert "events (newest 2 of 9, newest first)" in text and "— by ann: lunch" in text
    assert step_agent(steps[2], trail) == "p7"
    assert waiting_for(steps[3], steps, None) == []
    assert "events" not in render_show(wf, [], None, template)


def test_arguments_parse_and_bad_ones_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """``create`` collects repeated ``--data`` pairs (JSON values when they parse); a pair
    without ``=`` and a bad ``--limit`` are one line and exit 2 before any request."""
    args = build_parser().parse_args(["wf", "create", "pick", "--data", "n=3", "--data",
                                      "s=hi", "--data", 'o={"a": [1]}', "--priority", "4"])
    assert parse_data(args.data) == {"n": 3, "s": "hi", "o": {"a": [1]}}
    assert (args.template, args.priority) == ("pick", 4)
    api = ["--api", "http://127.0.0.1:9", "--token", "t"]
    assert main(["wf", "create", "pick", "--data", "oops", *api]) == 2
    assert main(["wf", "list", "--limit", "0", *api]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["fleetflow wf: --data 'oops': give KEY=VALUE, e.g. --data order=o-17",
                   "fleetflow wf: --limit 0: give 1 to 500"]


def test_token_is_found_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--token, then --token-file, then FLEETFLOW_TOKEN, then DATA/admin-token; none is
    one line naming the file it looked for and how to get one."""
    (tmp_path / "admin-token").write_text("ff_from_up\n")
    (tmp_path / "tok").write_text("ff_file\n")
    monkeypatch.delenv("FLEETFLOW_TOKEN", raising=False)
    monkeypatch.setenv("FLEETFLOW_DATA", str(tmp_path))

    def ns(**kw: Any) -> argparse.Namespace:
        return argparse.Namespace(**{"token": None, "token_file": None, "data_dir": None, **kw})

    assert find_token(ns(token="ff_flag", token_file=tmp_path / "tok")) == "ff_flag"
    assert find_token(ns(token_file=tmp_path / "tok")) == "ff_file"
    monkeypatch.setenv("FLEETFLOW_TOKEN", "ff_env")
    assert find_token(ns()) == "ff_env"
    monkeypatch.delenv("FLEETFLOW_TOKEN")
    assert find_token(ns()) == "ff_from_up"
    with pytest.raises(CliError, match=r"no token: .*nowhere/admin-token does not exist.*"
                                       "fleetflow up"):
        find_token(ns(data_dir=tmp_path / "nowhere"))
    with pytest.raises(CliError, match=r"--token-file .*missing"):
        find_token(ns(token_file=tmp_path / "missing"))


def test_api_errors_say_what_to_do() -> None:
    """401, 403, 404, 409 and 422 each become one line saying what to fix."""
    api = Api("http://h", "t")
    assert api.explain(401, "bad").startswith("token refused: bad; pass a valid --token")
    assert "higher role" in api.explain(403, "needs planner")
    assert api.explain(404, "no facility has workflow 'x'") == \
        "not found: no facility has workflow 'x'"
    assert api.explain(409, "illegal_transition: w is in cancelled") == \
        "refused: illegal_transition: w is in cancelled"
    assert api.explain(409, "refused: no failed step") == "refused: no failed step"
    assert api.explain(422, "body.priority: too big").startswith("invalid: body.priority")


def test_no_hub_is_one_line(capsys: pytest.CaptureFixture[str], port: int) -> None:
    """Nothing listening at --api: one line naming the URL and `fleetflow up`, exit 2."""
    assert main(["wf", "list", "--api", f"http://127.0.0.1:{port}", "--token", "t"]) == 2
    assert capsys.readouterr().err == (
        f"fleetflow wf: no hub at http://127.0.0.1:{port} (ConnectError): start it with "
        "`fleetflow up` or pass --api\n")


def test_something_else_at_the_url_is_one_line(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    """An HTTP server that is not a hub (HTML for every path): one line saying so, exit 2,
    not a JSON traceback."""
    import functools
    import http.server
    import threading

    (tmp_path / "api" / "v1").mkdir(parents=True)
    (tmp_path / "api" / "v1" / "workflows").write_text("<html>hello</html>")
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert main(["wf", "list", "--api", url, "--token", "t"]) == 2
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err
    assert err.startswith(f"fleetflow wf: {url} is not a Fleetflow hub") and err.count("\n") == 1


# --- against a real stack ----------------------------------------------------------------

@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[Stack]:
    """One stack (edges fa and fb, the hub) for the module's tests."""
    yield from run_stack(tmp_path_factory.mktemp("cliwf"), mosquitto_bin,
                         facilities=("fa", "fb"))


def _wf(stack: Stack, capsys: pytest.CaptureFixture[str], *argv: str,
        role: str = "admin") -> tuple[int, str, str]:
    """``fleetflow wf ARGV`` in this process as ``role``: (status, stdout, stderr)."""
    code = main(["wf", *argv, "--api", stack.url, "--token", stack.tokens[role]])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_create_list_show(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """``create`` prints the new id (data, labels, priority, id taken as given); ``list``
    finds it by facility, template and label; ``show`` prints its state path, its steps
    and what each waits for, and the audit trail naming who created it."""
    code, out, err = _wf(stack, capsys, "create", "api_pick", "--facility", "fa", "--data",
                         "order=o-9", "--data", "n=2", "--label", "shift=night",
                         "--priority", "7", "--id", "cli-1", "--reason", "restock",
                         role="planner")
    assert (code, out, err) == (0, "cli-1\n", "")
    with stack.client() as c:
        wf = c.get("/api/v1/workflows/cli-1").json()
    assert (wf["priority"], wf["data"], wf["labels"]) == (7, {"order": "o-9", "n": 2},
                                                         {"shift": "night"})
    code, out, _ = _wf(stack, capsys, "list", "--facility", "fa", "--template", "api_pick",
                       "--label", "shift=night")
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == ["ID", "cli-1"]
    code, out, _ = _wf(stack, capsys, "list", "--json", "--facility", "fb")
    assert code == 0 and json.loads(out)["count"] == 0
    code, out, _ = _wf(stack, capsys, "show", "cli-1", role="viewer")
    assert code == 0
    assert "state     active \u203a" in out
    assert "deliver  robot" in out and "waiting for fetch" in out
    assert "workflow_created api_pick priority 7" in out and "by planner-user: restock" in out
    code, out, _ = _wf(stack, capsys, "show", "cli-1", "--json", "--events", "1")
    assert code == 0 and json.loads(out)["workflow"]["id"] == "cli-1"
    assert len(json.loads(out)["events"]) == 1


@pytest.mark.slow
def test_create_picks_an_online_facility_and_json(stack: Stack,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Without --facility ``create`` takes the first facility online and says so on
    stderr; ``--json`` prints the hub's applied command record."""
    code, out, err = _wf(stack, capsys, "create", "api_pick", "--json")
    record = json.loads(out)
    assert code == 0 and record["state"] == "applied" and record["facility"] == "fa"
    assert "facility 'fa' (online: fa, fb; --facility picks another)" in err


@pytest.mark.slow
def test_pause_resume_cancel_and_refusals(stack: Stack,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """pause, resume and cancel act and say the new state; cancelling twice is the
    edge's sentence; a viewer is refused; an unknown id is not found — each one line,
    exit 2."""
    with stack.client("planner") as c:
        wid = create(c, "fb")
    code, out, _ = _wf(stack, capsys, "pause", wid, "--reason", "lunch")
    assert code == 0 and out.startswith(f"paused {wid}: now paus")
    assert _wf(stack, capsys, "resume", wid)[1].startswith(f"resumed {wid}: now active")
    assert _wf(stack, capsys, "cancel", wid)[0] == 0
    code, out, err = _wf(stack, capsys, "cancel", wid)
    assert (code, out) == (2, "")
    assert err.startswith(f"fleetflow wf: refused: illegal_transition: workflow {wid} is in "
                          "cancel") and err.count("\n") == 1
    code, _, err = _wf(stack, capsys, "pause", wid, role="viewer")
    assert code == 2 and err.startswith("fleetflow wf: not allowed: token 'viewer-user' has "
                                        "role viewer") and err.count("\n") == 1
    assert _wf(stack, capsys, "show", "nope")[2] == (
        "fleetflow wf: not found: no facility has workflow 'nope'\n")
    code, _, err = _wf(stack, capsys, "create", "nope", "--facility", "fa")
    assert code == 2 and "unknown template 'nope'" in err
    code, _, err = _wf(stack, capsys, "create", "api_pick", "--facility", "zz")
    assert code == 2 and err.startswith("fleetflow wf: not found: unknown facility 'zz'")


@pytest.mark.slow
def test_recover(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """``recover --strategy checkpoint_restore`` restores the newest checkpoint; a retry
    with nothing failed is the edge's refusal; a field the strategy does not take is the
    API's 422 — one line each."""
    with stack.client("planner") as c:
        wid = create(c, "fa")
        assert c.post(f"/api/v1/workflows/{wid}/checkpoint",
                      json={"label": "x"}).status_code == 200
    code, out, _ = _wf(stack, capsys, "recover", wid, "--strategy", "checkpoint_restore")
    assert code == 0 and out.startswith(f"recovered (checkpoint_restore) {wid}: now active")
    code, _, err = _wf(stack, capsys, "recover", wid, "--strategy", "automatic_retry")
    assert code == 2 and "no failed step to retry" in err and err.count("\n") == 1
    code, _, err = _wf(stack, capsys, "recover", wid, "--strategy", "automatic_retry",
                       "--action", "retry")
    assert code == 2 and err.startswith("fleetflow wf: invalid: body") and "action" in err


@pytest.mark.slow
def test_bad_token_is_one_line(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """A refused token, for a request and for the live stream: one line, exit 2."""
    assert main(["wf", "list", "--api", stack.url, "--token", "ff_nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fleetflow wf: token refused: ") and err.count("\n") == 1
    assert main(["wf", "watch", "--api", stack.url, "--token", "ff_nope", "--for", "5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fleetflow wf: token refused by the live stream ")


@pytest.mark.slow
def test_watch_follows_a_workflow_to_its_end(stack: Stack) -> None:
    """``watch --workflow`` (a process, piped: no colour) prints the workflow's story from
    its creation, one line per event, live, and exits 0 once it is cancelled."""
    with stack.client("planner") as c:
        wid = create(c, "fb")
        watch = subprocess.Popen(
            [PYTHON, "-m", "fleetflow", "wf", "watch", "--workflow", wid, "--api", stack.url,
             "--token", stack.tokens["viewer"]], cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        try:
            assert watch.stdout is not None
            first = watch.stdout.readline()
            assert "fb #" in first and f"{wid} workflow_created api_pick" in first
            assert c.delete(f"/api/v1/workflows/{wid}").status_code == 200
            # Not communicate(): it reads the raw pipe and would miss what readline()
            # already buffered (the lines after the first) — that lost workflow_started.
            watch.wait(30)
            out, err = watch.stdout.read(), watch.stderr.read() if watch.stderr else ""
        finally:
            if watch.poll() is None:
                watch.kill()
                watch.wait()
    assert watch.returncode == 0, err
    lines = out.splitlines()
    assert lines[-1].split(" ", 3)[3].startswith(f"{wid} workflow_cancelled reason: ")
    assert "\033[" not in out and all(f" {wid} " in line for line in lines), out
    kinds = [line.split()[4] for line in lines]
    assert kinds[0] == "workflow_started" and "step_ready" in kinds, out


@pytest.mark.slow
def test_watch_facility_for_a_while(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """``watch --facility fa --for S`` shows fa's new events only, then ends, exit 0."""
    with stack.client("planner") as c:
        wait_for(lambda: c.get("/health").status_code == 200)
    import threading

    def later() -> None:
        time.sleep(1.5)
        with stack.client("planner") as c:
            create(c, "fb")
            create(c, "fa", workflow_id="cli-watch-fa")

    threading.Thread(target=later, daemon=True).start()
    code, out, _ = _wf(stack, capsys, "watch", "--facility", "fa", "--for", "5")
    assert code == 0
    assert "cli-watch-fa workflow_created" in out
    assert all(line.split()[1] == "fa" for line in out.splitlines())
