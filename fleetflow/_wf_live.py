"""``fleetflow up``'s event lines: after ``ready``, one line per transition (a workflow
created, started, completed, failed, cancelled; a step assigned, done, failed; conflicts),
from the hub's live stream, with the formatter of ``fleetflow wf watch``.

It runs on a daemon thread and never takes ``up`` down: a refused token or a lost hub is
one line on stderr (the stream resumes by itself after a drop), anything unexpected ends
only the lines.
"""

from __future__ import annotations

import sys
import threading
from typing import IO, Any

from fleetflow._errors import CliError
from fleetflow._wf_format import TRANSITIONS, event_line, use_colour
from fleetflow._wf_stream import follow

__all__ = ["start_event_lines"]


def start_event_lines(api: str, token: str, stop: threading.Event,
                      out: IO[str] | None = None) -> threading.Thread:
    """Print the transitions the hub at ``api`` (``http://…``) streams, until ``stop``."""
    stream = out or sys.stdout
    colour = use_colour(stream)
    ws_url = "ws" + api.rstrip("/").removeprefix("http") + "/ws/workflows"

    def show(change: dict[str, Any]) -> bool:
        event = change["event"]
        if event.get("kind") in TRANSITIONS:
            print(event_line(event, colour), file=stream, flush=True)
        return False

    def run() -> None:
        try:
            follow(ws_url, token, show, stop=stop)
        except CliError as exc:
            print(f"fleetflow up: no event lines: {exc}", file=sys.stderr, flush=True)
        except Exception as exc:  # the lines are a view: losing them must not stop `up`
            print(f"fleetflow up: event lines stopped: {type(exc).__name__}: {exc}",
                  file=sys.stderr, flush=True)

    thread = threading.Thread(target=run, name="up-event-lines", daemon=True)
    thread.start()
    return thread
