"""``fleetflow wf``: workflows over the hub API — create, list, show, pause, resume, cancel,
recover and watch (docs/cli.md).

It speaks only HTTP and the WebSocket to the hub (``fleetflow up`` or ``fleetflow hub``);
the token is found on this machine (``_wf_client``). Every error is one line naming what to
fix, exit status 2; ``--json`` gives scripts the API's own answer.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from fleetflow._errors import CliError

__all__ = ["parse_data", "register"]

_STRATEGIES = ("automatic_retry", "checkpoint_restore", "partial_rollback",
               "manual_intervention")
_ACTIONS = ("retry", "skip", "reassign", "abort", "signal")
_START = "0000000000000000"  # before the hub's first change token: a workflow's whole story


def register(sub: Any) -> None:
    """Add ``wf`` and its actions."""
    from fleetflow._wf_client import add_connection_flags

    p = sub.add_parser("wf", help="create, list, show, pause, resume, cancel, recover and "
                                  "watch workflows through the hub API",
                       description="Workflows through the hub's REST API and live stream. "
                       "The token: --token, --token-file, FLEETFLOW_TOKEN, else the admin "
                       "token `fleetflow up` wrote (.fleetflow/admin-token).")
    wsub = p.add_subparsers(dest="wf_command", metavar="ACTION", required=True)

    c = wsub.add_parser("create", help="create a workflow from a template; prints its id")
    c.add_argument("template", help="template name (fleetflow wf templates lists them)")
    c.add_argument("--facility", help="default: the first facility online at the hub")
    c.add_argument("--data", action="append", default=[], metavar="KEY=VALUE",
                   help="workflow data (repeatable; VALUE is JSON when it parses, else a "
                        "string)")
    c.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                   help="a label (repeatable)")
    c.add_argument("--priority", type=int, default=None, help="0-1000, higher first")
    c.add_argument("--id", dest="workflow_id", default=None, help="the workflow's id "
                   "(default: the hub makes one)")
    c.add_argument("--reason", help="why, for the audit trail")
    c.add_argument("--json", action="store_true", help="print the hub's command record")
    c.set_defaults(handler=_create)

    ls = wsub.add_parser("list", help="workflows as a table, oldest first (filters as the API's)")
    for flag in ("facility", "state", "template", "agent"):
        ls.add_argument(f"--{flag}")
    ls.add_argument("--label", metavar="KEY=VALUE")
    ls.add_argument("--limit", type=int, default=50, help="at most this many (1-500)")
    ls.add_argument("--json", action="store_true", help="print the API's page")
    ls.set_defaults(handler=_list)

    sh = wsub.add_parser("show", help="one workflow: state, steps, agents, outputs, audit trail")
    sh.add_argument("workflow_id", metavar="ID")
    sh.add_argument("--events", type=int, default=15, metavar="N",
                    help="the newest N audit-trail events (default 15; 0: none)")
    sh.add_argument("--json", action="store_true",
                    help="print {workflow, events} as the API gives them")
    sh.set_defaults(handler=_show)

    for verb, what in (("pause", "pause a running workflow"), ("resume", "resume a paused one"),
                       ("cancel", "cancel a workflow (it stays, cancelled)")):
        a = wsub.add_parser(verb, help=what)
        a.add_argument("workflow_id", metavar="ID")
        a.add_argument("--reason", help="why, for the audit trail")
        a.set_defaults(handler=_act, verb=verb)

    r = wsub.add_parser("recover", help="recover a failed step or workflow (docs/workflows.md)")
    r.add_argument("workflow_id", metavar="ID")
    r.add_argument("--strategy", required=True, choices=_STRATEGIES)
    r.add_argument("--step", help="the step (automatic_retry, partial_rollback, "
                                  "manual_intervention)")
    r.add_argument("--action", choices=_ACTIONS, help="manual_intervention's action")
    r.add_argument("--checkpoint", help="checkpoint_restore / partial_rollback: its id")
    r.add_argument("--then", choices=("abort", "retry"), help="partial_rollback: then what")
    r.add_argument("--signal", help="manual_intervention --action signal: the signal")
    r.add_argument("--reason", help="why, for the audit trail")
    r.set_defaults(handler=_recover)

    w = wsub.add_parser("watch", help="live: one line per event (Ctrl-C stops)")
    w.add_argument("--facility", help="only this facility's events")
    w.add_argument("--workflow", metavar="ID", help="only this workflow's, from its start; "
                   "stops once it completes, fails or is cancelled")
    w.add_argument("--since", metavar="TOKEN", help="first what came after this change token")
    w.add_argument("--all", action="store_true",
                   help="also agents' periodic updates and step progress")
    w.add_argument("--for", dest="for_s", type=float, metavar="S", help="stop after S seconds")
    w.set_defaults(handler=_watch)

    t = wsub.add_parser("templates", help="the templates the hub knows, with their steps")
    t.set_defaults(handler=_templates)

    for action in (c, ls, sh, r, w, t, *(wsub.choices[v] for v in ("pause", "resume", "cancel"))):
        add_connection_flags(action)


def parse_data(pairs: list[str], flag: str = "--data") -> dict[str, Any]:
    """``KEY=VALUE`` pairs as a dict; a VALUE that parses as JSON is that value
    (``n=3`` → 3, ``ok=true`` → True), else the string. ``CliError`` on a bad pair."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"{flag} {pair!r}: give KEY=VALUE, e.g. {flag} order=o-17")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        out[key.strip()] = value
    return out


def _print(text: str) -> None:
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `| head`: the reader left; not an error of ours
        sys.stdout = None  # type: ignore[assignment]  # silences the flush at exit


def _pick_facility(api: Any) -> str:
    facilities = api.get("/facilities")
    online = sorted(f["id"] for f in facilities if f.get("online"))
    if not online:
        known = ", ".join(sorted(f["id"] for f in facilities)) or "none"
        raise CliError(f"no facility is online at {api.url} (known: {known}); start its edge "
                       "(`fleetflow up`) or pass --facility")
    if len(online) > 1:
        print(f"fleetflow wf: facility {online[0]!r} (online: {', '.join(online)}; "
              "--facility picks another)", file=sys.stderr)
    return str(online[0])


def _create(args: argparse.Namespace) -> int:
    from fleetflow._wf_client import connect

    data, labels = parse_data(args.data), parse_data(args.label, "--label")
    if bad := [k for k, v in labels.items() if not isinstance(v, str)]:
        labels.update({k: json.dumps(labels[k]) for k in bad})  # labels are strings
    api = connect(args)
    body: dict[str, Any] = {"facility": args.facility or _pick_facility(api),
                            "template": args.template, "data": data}
    if labels:
        body["labels"] = labels
    if args.priority is not None:
        body["priority"] = args.priority
    if args.workflow_id:
        body["workflow_id"] = args.workflow_id
    out = api.request("POST", "/workflows", json=body, reason=args.reason)
    if args.json:
        _print(json.dumps(out, indent=2))
        return 0
    _print(str(out["args"]["workflow_id"]))
    if out.get("state") == "pending":
        print(f"fleetflow wf: queued for facility {body['facility']!r}; its edge has not "
              f"answered yet (command {out['command_id']})", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    from fleetflow._wf_client import connect
    from fleetflow._wf_show import render_table

    if not 1 <= args.limit <= 500:
        raise CliError(f"--limit {args.limit}: give 1 to 500")
    page = connect(args).get("/workflows", facility=args.facility, state=args.state,
                             template=args.template, agent=args.agent, label=args.label,
                             limit=args.limit)
    _print(json.dumps(page, indent=2) if args.json
           else render_table(page["items"], page.get("count")))
    return 0


def _show(args: argparse.Namespace) -> int:
    from fleetflow._wf_client import connect
    from fleetflow._wf_format import use_colour
    from fleetflow._wf_show import render_show

    if args.events < 0:
        raise CliError(f"--events {args.events}: give 0 or more")
    api = connect(args)
    wf = api.get(f"/workflows/{args.workflow_id}")
    trail: list[dict[str, Any]] = []
    total: int | None = None
    if args.events:
        page = api.get(f"/workflows/{args.workflow_id}/events", newest_first="true",
                       limit=min(args.events, 500))
        trail, total = page["items"], page.get("count", 0)
    if args.json:
        _print(json.dumps({"workflow": wf, "events": trail}, indent=2))
        return 0
    template = next((t for t in api.get("/templates") if t.get("name") == wf.get("template")
                     and t.get("version") == wf.get("version")), None)
    _print(render_show(wf, trail, total, template, use_colour(sys.stdout)))
    return 0


def _done(verb: str, wid: str, out: Any) -> str:
    result = out.get("result") if isinstance(out, dict) else None
    state = result.get("state") if isinstance(result, dict) else None
    if isinstance(out, dict) and out.get("state") == "pending":
        return f"{verb} {wid}: queued (command {out.get('command_id')})"
    from fleetflow._wf_format import state_path

    return f"{verb} {wid}" + (f": now {state_path(str(state))}" if state else "")


def _act(args: argparse.Namespace) -> int:
    from fleetflow._wf_client import connect

    api = connect(args)
    wid = args.workflow_id
    if args.verb == "cancel":
        out = api.request("DELETE", f"/workflows/{wid}", reason=args.reason)
    else:
        out = api.request("POST", f"/workflows/{wid}/{args.verb}", reason=args.reason)
    past = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}[args.verb]
    _print(_done(past, wid, out))
    return 0


def _recover(args: argparse.Namespace) -> int:
    from fleetflow._wf_client import connect

    if args.action == "signal" and not args.signal:
        raise CliError("--action signal needs --signal NAME")
    body: dict[str, Any] = {"strategy": args.strategy}
    for key, value in (("step_id", args.step), ("action", args.action),
                       ("checkpoint", args.checkpoint), ("then", args.then),
                       ("signal", args.signal)):
        if value is not None:
            body[key] = value
    out = connect(args).request("POST", f"/workflows/{args.workflow_id}/recover", json=body,
                                reason=args.reason)
    _print(_done(f"recovered ({args.strategy})", args.workflow_id, out))
    return 0


def _watch(args: argparse.Namespace) -> int:
    from fleetflow._wf_client import connect
    from fleetflow._wf_format import NOISY, TERMINAL, event_line, use_colour
    from fleetflow._wf_stream import follow, wait_seconds

    if args.for_s is not None and args.for_s <= 0:
        raise CliError(f"--for {args.for_s:g}: give a number of seconds above 0")
    api = connect(args)
    if args.workflow:
        api.get(f"/workflows/{args.workflow}")  # an unknown id: one line now, not silence
    colour = use_colour(sys.stdout)

    def show(change: dict[str, Any]) -> bool:
        event = change["event"]
        if event.get("kind") in NOISY and not args.all:
            return False
        _print(event_line(event, colour))
        return bool(args.workflow and event.get("kind") in TERMINAL
                    and event.get("workflow_id") == args.workflow)

    def dropped(why: str) -> None:
        print(f"fleetflow wf watch: the stream dropped ({why}); resuming", file=sys.stderr)

    since = args.since or (_START if args.workflow else None)
    follow(api.ws_url(), api.token, show, facility=args.facility, workflow_id=args.workflow,
           since=since, stop=wait_seconds(args.for_s), on_reconnect=dropped)
    return 0


def _templates(args: argparse.Namespace) -> int:
    from fleetflow._wf_client import connect

    for t in connect(args).get("/templates"):
        steps = []
        for s in t.get("steps") or []:
            caps = "/".join(s.get("capabilities") or [])
            steps.append(f"{s['id']} ({s['kind']}{': ' + caps if caps else ''})")
        _print(f"{t['name']} v{t.get('version', '?')}: {', '.join(steps)}")
    return 0
