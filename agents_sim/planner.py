"""The demo planner: creates workflows through the hub's REST API, as a cloud planner would.

``fleetflow up`` runs one ``DemoPlanner`` with a ``planner`` token: every ``every_s``
seconds it sends ``POST /api/v1/workflows`` round-robin over facilities and templates.
Writes go ``eventual`` (202 + a command id): the hub keeps the command in its durable
outbox until the edge answers, so a slow or restarting edge never holds the planner up.
``wait_api_ready`` polls the hub's ``/health`` until every facility's edge is online.

Only the standard library (``urllib``) is used, so the planner carries no HTTP client
dependency and never imports the hub: it sees the API exactly as any external client does.
The MQTT stand-in hub that created workflows before the hub existed is
``agents_sim.mqtt_hub`` (kept for tests of the edge's command delivery).
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ApiAnswer", "DemoPlanner", "PlannerStats", "api_request", "wait_api_ready"]


@dataclass(frozen=True, slots=True)
class ApiAnswer:
    """One HTTP answer: the status and the decoded JSON body (``None`` if it had none)."""

    status: int
    body: Any


def api_request(url: str, method: str = "GET", *, token: str | None = None,
                body: Any = None, headers: dict[str, str] | None = None,
                timeout: float = 15.0) -> ApiAnswer:
    """``method url`` with an optional bearer token and JSON body; any HTTP status is an
    answer (4xx/5xx included), only a transport failure raises ``OSError``."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        decoded = json.loads(raw) if raw else None
    except ValueError:
        decoded = raw.decode(errors="replace")
    return ApiAnswer(status, decoded)


def wait_api_ready(url: str, facilities: int, *, timeout: float = 60.0,
                   give_up: Callable[[], bool] = lambda: False) -> dict[str, Any] | None:
    """Poll ``url/health`` until the hub answers and sees at least ``facilities`` edges
    online; that health body, or ``None`` after ``timeout`` s or once ``give_up()`` is true
    (checked five times a second: e.g. "a process we started exited")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not give_up():
        try:
            answer = api_request(f"{url}/health", timeout=2.0)
        except OSError:
            answer = None  # not listening yet
        if (answer is not None and answer.status == 200 and isinstance(answer.body, dict)
                and int(answer.body.get("online", 0)) >= facilities):
            return answer.body
        time.sleep(0.2)
    return None


@dataclass(slots=True)
class PlannerStats:
    """What the planner did: requests sent, accepted by the hub, refused, or not delivered."""

    sent: int = 0
    accepted: int = 0
    refused: int = 0
    unreachable: int = 0
    last_error: str = ""


class DemoPlanner:
    """Create a demo workflow every ``every_s`` seconds on a background thread.

    Workflow ``n`` (from 1) goes to ``facilities[n % len]`` from ``templates[n % len]``
    with priority 1; its id is ``wf-{run}-{n}``, where ``run`` is random per planner so that
    a restarted planner never repeats an id.
    """

    def __init__(self, api_url: str, token: str, facilities: Sequence[str],
                 templates: Sequence[str], *, every_s: float) -> None:
        if not facilities or not templates:
            raise ValueError("a demo planner needs at least one facility and one template")
        if not every_s > 0:
            raise ValueError("every_s must be positive")
        self.api_url: str = api_url.rstrip("/")
        """The hub's base URL (``http://host:port``)."""
        self.facilities: tuple[str, ...] = tuple(facilities)
        self.templates: tuple[str, ...] = tuple(templates)
        self.every_s: float = every_s
        self.run: str = secrets.token_hex(3)
        """This planner's part of every workflow id."""
        self.stats = PlannerStats()
        self.created: list[str] = []
        """Ids of the workflows the hub accepted, in order."""
        self._token = token
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:  # never the token
        return f"DemoPlanner({self.api_url!r}, run={self.run!r}, sent={self.stats.sent})"

    def body(self, n: int) -> dict[str, Any]:
        """The ``POST /api/v1/workflows`` body of workflow ``n`` (pure: nothing is sent)."""
        return {"facility": self.facilities[n % len(self.facilities)],
                "template": self.templates[n % len(self.templates)],
                "workflow_id": f"wf-{self.run}-{n}", "priority": 1,
                "reason": "demo planner"}

    def create(self, n: int) -> ApiAnswer | None:
        """Send workflow ``n`` now; the hub's answer (``None`` if it could not be reached).
        Counted in ``stats``; never raises."""
        body = self.body(n)
        self.stats.sent += 1
        try:
            answer = api_request(f"{self.api_url}/api/v1/workflows", "POST", token=self._token,
                                 body=body, headers={"X-Consistency": "eventual"})
        except OSError as exc:
            self.stats.unreachable += 1
            self.stats.last_error = f"{body['workflow_id']}: {exc}"
            return None
        if answer.status in (200, 201, 202):
            self.stats.accepted += 1
            self.created.append(body["workflow_id"])
        else:
            self.stats.refused += 1
            self.stats.last_error = f"{body['workflow_id']}: HTTP {answer.status} {answer.body}"
        return answer

    def start(self) -> DemoPlanner:
        """Start creating workflows (the first after ``every_s``)."""
        self._thread = threading.Thread(target=self._feed, name="demo-planner", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 20.0) -> None:
        """Stop creating workflows (a request in flight finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _feed(self) -> None:
        for n in itertools.count(1):
            if self._stop.wait(self.every_s):
                return
            self.create(n)

    def __enter__(self) -> DemoPlanner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
