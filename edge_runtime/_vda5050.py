"""VDA 5050 2.x master control, sans-IO: one ``VdaMaster`` per facility, one ``AgvSession``
per AGV.

Inputs are decoded messages (``topics.decode_vda`` did size, NaN and schema checks) and the
current time; outputs are ``VdaMessage`` s to publish and step-level outcomes
(``edge_runtime._vda_outcomes``). No clocks, no sockets: the edge core and the simulator
drive it alike, and a replay of the same inputs gives the same outputs.

Each AGV is answered in the protocol version its own headers carry (2.0.x or 2.1.x); a 2.0
AGV never receives a 2.1-only field. ``headerId`` counts per topic per AGV.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import networkx as nx

from edge_runtime._vda_order import (
    VERSION_ONLY_FIELDS,
    ActionSpec,
    OrderPlan,
    PathNode,
    path_from_graph,
    strip_for_version,
)
from edge_runtime._vda_outcomes import (
    VdaAgvLost,
    VdaAgvOnline,
    VdaMessage,
    VdaOutcome,
    VdaOutput,
    VdaPaused,
    VdaSafety,
    VdaStepCancelled,
    VdaStepDone,
    VdaStepFailed,
    VdaStepProgress,
    VdaStepStarted,
)
from topics import ProtocolError, VdaTopic, parse_topic, vda_topic, vda_version_of

__all__ = [
    "VERSION_ONLY_FIELDS",
    "ActionSpec",
    "AgvSession",
    "Connection",
    "OrderPlan",
    "PathNode",
    "VdaAgvLost",
    "VdaAgvOnline",
    "VdaMaster",
    "VdaMessage",
    "VdaOutcome",
    "VdaOutput",
    "VdaPaused",
    "VdaSafety",
    "VdaStepCancelled",
    "VdaStepDone",
    "VdaStepFailed",
    "VdaStepProgress",
    "VdaStepStarted",
    "actions_for",
    "path_from_graph",
    "strip_for_version",
    "vda_timestamp",
]

Connection = Literal["ONLINE", "OFFLINE", "CONNECTIONBROKEN", "UNKNOWN"]

SUPPORTED_VERSIONS = ("2.0.0", "2.1.0")
"""What the master speaks; an AGV on a later 2.x minor is answered in the newest of these."""

_TERMINAL = frozenset({"FINISHED", "FAILED"})
_IN_PROGRESS = frozenset({"WAITING", "INITIALIZING", "RUNNING", "PAUSED"})
_DRIVE_ONLY = frozenset({"", "move", "goto", "drive", "transport"})
_REJECTIONS: Mapping[str, bool] = {
    # errorType -> retryable. A malformed or unperformable order fails the same way again.
    "validationError": False,
    "orderError": False,
    "orderUpdateError": True,
    "noRouteError": True,
}
_CONTROLLED_MODES = frozenset({"AUTOMATIC", "SEMIAUTOMATIC"})


def vda_timestamp(now: float) -> str:
    """ISO 8601 UTC with milliseconds, e.g. ``2017-04-15T11:40:03.120Z`` (VDA 5050 §6.4)."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _answer_version(agv_version: str) -> str:
    """The version to answer an AGV in: its own 2.0/2.1, else our newest 2.x."""
    major, minor, _ = vda_version_of({"version": agv_version})
    if major != 2:
        raise ProtocolError("version", f"VDA 5050 {agv_version!r} is not a 2.x version")
    return "2.0.0" if minor == 0 else "2.1.0"


@dataclass(slots=True)
class _Job:
    """A robot step waiting for, or running as, one VDA order."""

    workflow_id: str
    step_id: str
    attempt: int
    goal: str | None
    path: tuple[PathNode, ...] | None
    actions: tuple[ActionSpec, ...]


@dataclass(slots=True)
class _Active:
    """The order currently given to the AGV for ``job``."""

    job: _Job
    plan: OrderPlan
    message: dict[str, Any]
    """Body of the last order message sent (resent unchanged until acknowledged)."""
    sent_at: float
    acked_update: int = -1
    started: bool = False
    progress_seq: int = -1
    known_errors: frozenset[tuple[str, str]] = frozenset()
    cancel_action_id: str | None = None


@dataclass(slots=True)
class AgvSession:
    """What the master knows about one AGV, and the step it is running."""

    manufacturer: str
    serial_number: str
    connection: Connection = "UNKNOWN"
    """Last ``connectionState`` heard (UNKNOWN before any)."""
    version: str | None = None
    """The AGV's own protocol version, from the headers of its messages."""
    state: dict[str, Any] | None = None
    """Its last ``state`` message."""
    state_at: float | None = None
    factsheet: dict[str, Any] | None = None
    """Its last ``factsheet`` message."""
    lost: bool = False
    active: _Active | None = None
    queue: deque[_Job] = field(default_factory=deque)
    header_ids: dict[str, int] = field(default_factory=dict)
    safety: dict[str, str] = field(default_factory=dict)
    paused: bool = False

    @property
    def answer_version(self) -> str:
        """The version we write to this AGV (2.1.0 until it told us its own)."""
        return _answer_version(self.version) if self.version else SUPPORTED_VERSIONS[-1]

    @property
    def busy(self) -> bool:
        """§6.6.2 (3): unfinished nodes or actions, or an order of ours still open."""
        if self.active is not None:
            return True
        if self.state is None:
            return True  # position unknown: no order can start trivially reachable
        if self.state.get("nodeStates"):
            return True
        return any(a.get("actionStatus") not in _TERMINAL for a in self.state["actionStates"])

    @property
    def controllable(self) -> bool:
        """Online, in automatic mode and not e-stopped: orders may be sent."""
        return self.connection == "ONLINE" and not self.lost and not self.safety

    def _next_header(self, kind: str) -> int:
        n = self.header_ids.get(kind, -1) + 1
        self.header_ids[kind] = n
        return n


class VdaMaster:
    """VDA 5050 master control for one facility's AGVs."""

    def __init__(
        self,
        *,
        graph: nx.Graph[Any] | None = None,
        base_length: int | None = None,
        resend_after_s: float = 5.0,
        liveness_s: float = 60.0,
        interface: str = "uagv",
        major: str = "v2",
    ) -> None:
        self.graph: nx.Graph[Any] | None = graph
        """Facility map used to plan routes (``x``, ``y``, ``map_id`` node attributes)."""
        self.base_length: int | None = base_length
        """Nodes released per order message; None releases the whole route at once."""
        self.resend_after_s: float = resend_after_s
        """An order not acknowledged in a state this long after sending is sent again
        (same ids: the AGV discards a duplicate, §6.6.4.3) — QoS 0 may lose it."""
        self.liveness_s: float = liveness_s
        """No state for this long means the AGV is lost (the spec's state period is 30 s)."""
        self.interface: str = interface
        self.major: str = major
        self.sessions: dict[tuple[str, str], AgvSession] = {}
        """Every AGV heard of, by (manufacturer, serialNumber)."""
        self._orders = 0
        self._instants = 0

    # --- wiring ----------------------------------------------------------------------

    def subscriptions(self) -> list[str]:
        """Topic filters the shell subscribes to (QoS 0, connection QoS 1)."""
        base = f"{self.interface}/{self.major}/+/+"
        return [f"{base}/state", f"{base}/connection", f"{base}/factsheet"]

    def session(self, manufacturer: str, serial_number: str) -> AgvSession:
        """The session of one AGV, created on first use."""
        key = (manufacturer, serial_number)
        if key not in self.sessions:
            vda_topic(manufacturer, serial_number, "state")  # checks both identifiers
            self.sessions[key] = AgvSession(manufacturer, serial_number)
        return self.sessions[key]

    def _send(self, s: AgvSession, kind: Literal["order", "instantActions"],
              body: dict[str, Any], now: float) -> VdaMessage:
        version = s.answer_version
        message = {
            "headerId": s._next_header(kind),
            "timestamp": vda_timestamp(now),
            "version": version,
            "manufacturer": s.manufacturer,
            "serialNumber": s.serial_number,
            **body,
        }
        topic = vda_topic(s.manufacturer, s.serial_number, kind,
                          interface=self.interface, major=self.major)
        return VdaMessage(topic, strip_for_version(kind, message, version))

    # --- inputs from AGVs ------------------------------------------------------------

    def handle(self, topic: str, message: dict[str, Any], now: float) -> VdaOutput:
        """Take one decoded message from an AGV; ``ProtocolError`` if it is not for us."""
        parsed = parse_topic(topic, interface=self.interface)
        if not isinstance(parsed, VdaTopic) or parsed.major != self.major:
            raise ProtocolError("bad_topic", f"{topic!r} is not a {self.major} VDA 5050 topic")
        return self.handle_vda(parsed.manufacturer, parsed.serial_number, parsed.kind,
                               message, now)

    def handle_vda(self, manufacturer: str, serial_number: str, kind: str,
                   message: dict[str, Any], now: float) -> VdaOutput:
        """Like ``handle``, with the topic already parsed (``VdaInbound`` from the intake)."""
        if (message.get("manufacturer"), message.get("serialNumber")) != (
            manufacturer, serial_number
        ):
            raise ProtocolError(
                "identity", f"header names {message.get('manufacturer')!r}/"
                f"{message.get('serialNumber')!r} but the topic names "
                f"{manufacturer!r}/{serial_number!r}"
            )
        version = message.get("version")
        if not isinstance(version, str):
            raise ProtocolError("version", "VDA 5050 message without a version")
        _answer_version(version)  # refuses 1.x / 3.x before anything changes
        s = self.session(manufacturer, serial_number)
        s.version = version
        if kind == "connection":
            return self._on_connection(s, message, now)
        if kind == "state":
            return self._on_state(s, message, now)
        if kind == "factsheet":
            s.factsheet = message
            return []
        return []  # visualization: for viewers, not for logic

    def _on_connection(self, s: AgvSession, message: dict[str, Any], now: float) -> VdaOutput:
        conn = message.get("connectionState")
        if conn not in ("ONLINE", "OFFLINE", "CONNECTIONBROKEN"):
            raise ProtocolError("schema", f"connectionState {conn!r} is not known")
        s.connection = conn
        if conn == "ONLINE":
            s.lost = False
            s.state_at = now  # liveness counts from the announcement
            return [VdaAgvOnline(s.manufacturer, s.serial_number, s.answer_version)]
        return self._lose(s, conn)

    def _lose(
        self, s: AgvSession, reason: Literal["OFFLINE", "CONNECTIONBROKEN", "STATE_TIMEOUT"]
    ) -> VdaOutput:
        """DESIGN §6: a lost agent fails its steps as retryable, to be re-allocated."""
        if s.lost:
            return []
        s.lost = True
        out: VdaOutput = [VdaAgvLost(s.manufacturer, s.serial_number, reason)]
        jobs: list[tuple[_Job, str]] = []
        if s.active is not None:
            jobs.append((s.active.job, s.active.plan.order_id))
            s.active = None
        jobs.extend((job, "") for job in s.queue)
        s.queue.clear()
        for job, order_id in jobs:
            out.append(self._failed(s, job, order_id, "agv_lost",
                                    f"AGV {s.serial_number} is {reason}", True))
        return out

    def tick(self, now: float) -> VdaOutput:
        """Timer input: AGVs silent for ``liveness_s`` are lost."""
        out: VdaOutput = []
        for s in self.sessions.values():
            if not s.lost and s.state_at is not None and now - s.state_at > self.liveness_s:
                out.extend(self._lose(s, "STATE_TIMEOUT"))
        return out

    def _on_state(self, s: AgvSession, state: dict[str, Any], now: float) -> VdaOutput:
        s.state, s.state_at = state, now
        out: VdaOutput = []
        if s.lost and s.connection == "ONLINE":
            s.lost = False
        out.extend(self._safety(s, state))
        paused = bool(state.get("paused", False))
        if paused != s.paused:
            s.paused = paused
            out.append(VdaPaused(s.manufacturer, s.serial_number, paused))
        if s.active is not None:
            out.extend(self._track(s, s.active, state, now))
        out.extend(self._dispatch(s, now))
        return out

    def _safety(self, s: AgvSession, state: dict[str, Any]) -> VdaOutput:
        safety = state.get("safetyState", {})
        now_active: dict[str, str] = {}
        if safety.get("eStop", "NONE") != "NONE":
            now_active["e_stop"] = str(safety["eStop"])
        if safety.get("fieldViolation"):
            now_active["field_violation"] = "protective field violated"
        mode = state.get("operatingMode", "AUTOMATIC")
        if mode not in _CONTROLLED_MODES:
            now_active["operating_mode"] = str(mode)
        out: VdaOutput = []
        for cond in ("e_stop", "field_violation", "operating_mode"):
            before, after = s.safety.get(cond), now_active.get(cond)
            if before != after:
                out.append(VdaSafety(s.manufacturer, s.serial_number, cond,  # type: ignore[arg-type]
                                     after is not None, after or before or ""))
        s.safety = now_active
        return out

    # --- order tracking --------------------------------------------------------------

    def _track(self, s: AgvSession, a: _Active, state: dict[str, Any], now: float) -> VdaOutput:
        plan, job = a.plan, a.job
        ours = state.get("orderId") == plan.order_id
        rejected = self._rejection(a, state)
        if rejected is not None:
            error_type, text = rejected
            s.active = None
            out: VdaOutput = [self._failed(s, job, plan.order_id, error_type, text,
                                           _REJECTIONS[error_type])]
            if ours and state.get("nodeStates"):  # a refused update: stop the old base
                out.append(self._instant(s, "cancelOrder", now)[1])
            return out
        if not ours:
            if a.started:
                s.active = None
                return [self._failed(s, job, plan.order_id, "order_replaced",
                                     f"AGV now runs order {state.get('orderId')!r}", True)]
            return self._resend_if_due(s, a, now)
        a.acked_update = max(a.acked_update, int(state.get("orderUpdateId", 0)))
        out = self._resend_if_due(s, a, now) if a.acked_update < plan.update_id else []
        if not a.started:
            a.started = True
            out.append(VdaStepStarted(s.manufacturer, s.serial_number, job.workflow_id,
                                      job.step_id, job.attempt, plan.order_id))
        statuses = {x["actionId"]: x["actionStatus"] for x in state.get("actionStates", [])}
        if a.cancel_action_id is not None:
            if statuses.get(a.cancel_action_id) in _TERMINAL:
                s.active = None
                out.append(VdaStepCancelled(s.manufacturer, s.serial_number, job.workflow_id,
                                            job.step_id, job.attempt, plan.order_id))
            return out
        failed = [aid for aid in plan.action_ids if statuses.get(aid) == "FAILED"]
        fatal = [e for e in state.get("errors", []) if e.get("errorLevel") == "FATAL"]
        if failed or fatal:
            s.active = None
            if failed:
                kind, text = "action_failed", f"action {failed[0]} FAILED"
            else:
                kind = "agv_fatal_error"
                text = f"FATAL {fatal[0].get('errorType')}: {fatal[0].get('errorDescription', '')}"
            out.append(self._failed(s, job, plan.order_id, kind, text, True))
            if state.get("nodeStates"):
                out.append(self._instant(s, "cancelOrder", now)[1])
            return out
        seq = int(state.get("lastNodeSequenceId", 0))
        if state.get("lastNodeId") and seq != a.progress_seq and seq % 2 == 0:
            a.progress_seq = seq
            out.append(VdaStepProgress(s.manufacturer, s.serial_number, job.workflow_id,
                                       job.step_id, job.attempt, plan.order_id,
                                       min(1.0, seq / max(2 * plan.last, 1)),
                                       str(state["lastNodeId"])))
        if a.acked_update < plan.update_id:
            return out  # the newest update is still on its way
        if not plan.fully_released and (
            state.get("newBaseRequest") or seq >= plan.sequence_id(plan.base_end)
        ):
            out.extend(self.release(s.manufacturer, s.serial_number, now))
            return out
        in_progress = any(statuses.get(aid) in _IN_PROGRESS for aid in plan.action_ids)
        if not state.get("nodeStates") and not state.get("edgeStates") and not in_progress:
            s.active = None
            final = plan.path[-1].node_id
            done = (plan.fully_released and state.get("lastNodeId") == final
                    and all(statuses.get(aid) == "FINISHED" for aid in plan.action_ids))
            if done:
                out.append(VdaStepDone(s.manufacturer, s.serial_number, job.workflow_id,
                                       job.step_id, job.attempt, plan.order_id,
                                       self._outputs(plan, state)))
            else:
                out.append(self._failed(s, job, plan.order_id, "order_aborted",
                                        "the AGV dropped the order before finishing it", True))
        return out

    def _resend_if_due(self, s: AgvSession, a: _Active, now: float) -> VdaOutput:
        if now - a.sent_at < self.resend_after_s:
            return []
        a.sent_at = now
        return [self._send(s, "order", a.message, now)]

    def _rejection(self, a: _Active, state: dict[str, Any]) -> tuple[str, str] | None:
        """An order/update rejection error (§6.6.4) that concerns this order, if any."""
        for err in state.get("errors", []):
            etype = err.get("errorType")
            if etype not in _REJECTIONS:
                continue
            refs = {r.get("referenceKey"): r.get("referenceValue")
                    for r in err.get("errorReferences", [])}
            if "orderId" in refs:
                if refs["orderId"] != a.plan.order_id:
                    continue
                update = refs.get("orderUpdateId")
                if update is not None and str(update) != str(a.plan.update_id):
                    continue
            elif (etype, str(err.get("errorDescription", ""))) in a.known_errors:
                continue  # a warning still standing from before this order was sent
            elif a.acked_update >= a.plan.update_id:
                continue
            return etype, f"{etype}: {err.get('errorDescription', 'order rejected')}"
        return None

    @staticmethod
    def _outputs(plan: OrderPlan, state: dict[str, Any]) -> dict[str, Any]:
        results = {x["actionId"]: x.get("resultDescription") for x in state["actionStates"]}
        out: dict[str, Any] = {
            "node": plan.path[-1].node_id,
            "order_id": plan.order_id,
            "actions": [results.get(aid) for aid in plan.action_ids],
        }
        if "loads" in state:
            out["loads"] = state["loads"]
        if "agvPosition" in state:
            pos = state["agvPosition"]
            out["position"] = {"x": pos["x"], "y": pos["y"], "mapId": pos["mapId"]}
        return out

    def _failed(self, s: AgvSession, job: _Job, order_id: str, error_type: str, text: str,
                retryable: bool) -> VdaStepFailed:
        return VdaStepFailed(s.manufacturer, s.serial_number, job.workflow_id, job.step_id,
                             job.attempt, order_id, error_type, text, retryable)

    # --- commands from the core ------------------------------------------------------

    def assign(
        self,
        manufacturer: str,
        serial_number: str,
        *,
        workflow_id: str,
        step_id: str,
        now: float,
        attempt: int = 1,
        goal: str | None = None,
        path: Sequence[PathNode] | None = None,
        actions: Iterable[ActionSpec] = (),
    ) -> VdaOutput:
        """Queue a robot step for an AGV; it becomes an order as soon as the AGV is free.

        Give ``path`` (start node = where the AGV stands) or ``goal`` (a map node; the route
        is planned on ``graph`` from the AGV's ``lastNodeId`` when the order is sent).
        """
        if path is None and goal is None:
            raise ValueError("assign needs a goal node or a path")
        if path is not None and not path:
            raise ValueError("a path needs at least one node")
        if path is None and self.graph is None:
            raise ValueError("assign with a goal needs the master's graph")
        s = self.session(manufacturer, serial_number)
        job = _Job(workflow_id, step_id, attempt, goal,
                   tuple(path) if path is not None else None, tuple(actions))
        if s.lost:
            return [self._failed(s, job, "", "agv_lost", f"AGV {serial_number} is lost", True)]
        s.queue.append(job)
        return self._dispatch(s, now)

    def _dispatch(self, s: AgvSession, now: float) -> VdaOutput:
        """Send the next queued step if the AGV is free and under our control."""
        if not s.queue or s.busy or not s.controllable:
            return []
        job = s.queue.popleft()
        try:
            path = self._route(s, job)
        except (nx.NetworkXException, KeyError, ValueError) as exc:
            failed = self._failed(s, job, "", "no_route", str(exc)[:200], True)
            return [failed, *self._dispatch(s, now)]
        self._orders += 1
        order_id = f"{job.workflow_id}.{job.step_id}.{job.attempt}.{self._orders}"
        plan = OrderPlan(order_id, path, job.actions, base_length=self.base_length)
        body = plan.body()
        assert s.state is not None  # not busy implies a state was heard
        known = frozenset((str(e.get("errorType")), str(e.get("errorDescription", "")))
                          for e in s.state.get("errors", []))
        s.active = _Active(job, plan, body, now, known_errors=known)
        return [self._send(s, "order", body, now)]

    def _route(self, s: AgvSession, job: _Job) -> list[PathNode]:
        here = str(s.state.get("lastNodeId", "")) if s.state else ""
        if job.path is not None:
            if self.graph is None or not here or job.path[0].node_id == here:
                return list(job.path)
            return path_from_graph(self.graph, here, job.path[-1].node_id)
        assert job.goal is not None and self.graph is not None
        if not here:
            raise ValueError(f"AGV {s.serial_number} reports no lastNodeId to plan from")
        return path_from_graph(self.graph, here, job.goal)

    def release(self, manufacturer: str, serial_number: str, now: float,
                nodes: int | None = None) -> VdaOutput:
        """Extend the running order's base by ``nodes`` (traffic control or newBaseRequest)."""
        s = self.session(manufacturer, serial_number)
        a = s.active
        if a is None or a.acked_update < a.plan.update_id:
            return []  # nothing running, or the last update is not yet acknowledged
        body = a.plan.extend(nodes)
        if body is None:
            return []
        a.message, a.sent_at = body, now
        return [self._send(s, "order", body, now)]

    def cancel(self, manufacturer: str, serial_number: str, *, workflow_id: str,
               step_id: str, now: float) -> VdaOutput:
        """Withdraw a step: drop it from the queue, or ``cancelOrder`` if it runs."""
        s = self.session(manufacturer, serial_number)
        for job in list(s.queue):
            if (job.workflow_id, job.step_id) == (workflow_id, step_id):
                s.queue.remove(job)
                return [VdaStepCancelled(manufacturer, serial_number, workflow_id, step_id,
                                         job.attempt, "")]
        a = s.active
        if a is None or (a.job.workflow_id, a.job.step_id) != (workflow_id, step_id):
            return []
        action_id, msg = self._instant(s, "cancelOrder", now)
        a.cancel_action_id = action_id
        return [msg]

    def _instant(self, s: AgvSession, action_type: str, now: float,
                 params: Mapping[str, Any] | None = None,
                 blocking: Literal["NONE", "SOFT", "HARD"] = "NONE") -> tuple[str, VdaMessage]:
        if s.answer_version.startswith("2.0.") and (
            action_type in VERSION_ONLY_FIELDS["instantActions.actionType"]
        ):
            raise ValueError(f"{action_type} is VDA 5050 2.1; AGV {s.serial_number} speaks "
                             f"{s.version}")
        self._instants += 1
        action_id = f"ia.{action_type}.{self._instants}"
        action: dict[str, Any] = {"actionType": action_type, "actionId": action_id,
                                  "blockingType": blocking}
        if params:
            action["actionParameters"] = [{"key": k, "value": v} for k, v in params.items()]
        return action_id, self._send(s, "instantActions", {"actions": [action]}, now)

    def instant_action(self, manufacturer: str, serial_number: str, action_type: str,
                       now: float, params: Mapping[str, Any] | None = None,
                       blocking: Literal["NONE", "SOFT", "HARD"] = "NONE",
                       ) -> tuple[str, VdaMessage]:
        """Send any instant action; returns its ``actionId`` and the message."""
        return self._instant(self.session(manufacturer, serial_number), action_type, now,
                             params, blocking)

    def pause(self, manufacturer: str, serial_number: str, now: float) -> VdaOutput:
        """``startPause``: the AGV stops driving; the order stays resumable."""
        return [self.instant_action(manufacturer, serial_number, "startPause", now,
                                    blocking="HARD")[1]]

    def resume(self, manufacturer: str, serial_number: str, now: float) -> VdaOutput:
        """``stopPause``: resume driving and paused actions."""
        return [self.instant_action(manufacturer, serial_number, "stopPause", now,
                                    blocking="HARD")[1]]

    def request_state(self, manufacturer: str, serial_number: str, now: float) -> VdaOutput:
        """``stateRequest``: ask for a state message now."""
        return [self.instant_action(manufacturer, serial_number, "stateRequest", now)[1]]

    def request_factsheet(self, manufacturer: str, serial_number: str,
                          now: float) -> VdaOutput:
        """``factsheetRequest``: ask the AGV to publish its factsheet."""
        return [self.instant_action(manufacturer, serial_number, "factsheetRequest", now)[1]]


def actions_for(action: str | None, params: Mapping[str, Any]) -> tuple[ActionSpec, ...]:
    """The node actions for a native ``Assign.action`` (``pick`` → one HARD ``pick``).

    Pure driving (``None``, ``move``, ``goto``, ``drive``, ``transport``) needs none. Only
    JSON scalars, lists and dicts pass as ``actionParameters``; floats must be finite.
    """
    if action is None or action in _DRIVE_ONLY:
        return ()
    for key, value in params.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"action parameter {key!r} is not a finite number")
    return (ActionSpec(action, dict(params)),)

