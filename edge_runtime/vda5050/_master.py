"""VDA 5050 2.x master control, sans-IO: one ``VdaMaster`` per facility, one ``AgvSession``
per AGV.

Inputs are decoded messages (``topics.decode_vda`` did size, NaN and schema checks) and the
current time; outputs are ``VdaMessage`` s to publish and step-level outcomes
(``edge_runtime.vda5050._outcomes``). No clocks, no sockets: the edge core and the simulator
drive it alike, and a replay of the same inputs gives the same outputs. What an AGV's
``state`` and ``connection`` messages mean for its step is worked out in
``edge_runtime.vda5050._track``, on the sessions of ``edge_runtime.vda5050._session``; this
module sends the orders and instant actions.

Each AGV is answered in the protocol version its own headers carry (2.0.x or 2.1.x); a 2.0
AGV never receives a 2.1-only field, and gets its instant actions under both ``actions`` (the
2.0.0 document and schema) and ``instantActions`` (the early 2.0 draft schema some fielded
2.0 AGVs follow). ``headerId`` counts per topic per AGV.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import networkx as nx

from edge_runtime.vda5050._order import (
    VERSION_ONLY_FIELDS,
    ActionSpec,
    OrderPlan,
    PathNode,
    path_from_graph,
    strip_for_version,
)
from edge_runtime.vda5050._outcomes import (
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
from edge_runtime.vda5050._session import (
    AgvSession,
    Connection,
    RobotStep,
    RunningOrder,
    answer_version,
)
from edge_runtime.vda5050._track import (
    Tracked,
    observe_state,
    on_connection,
    silent,
    step_failed,
    track,
)
from topics import ProtocolError, VdaTopic, parse_topic, vda_topic

__all__ = [
    "VERSION_ONLY_FIELDS",
    "ActionSpec",
    "AgvSession",
    "Connection",
    "OrderPlan",
    "PathNode",
    "RobotStep",
    "RunningOrder",
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

_DRIVE_ONLY = frozenset({"", "move", "goto", "drive", "transport"})


def vda_timestamp(now: float) -> str:
    """ISO 8601 UTC with milliseconds, e.g. ``2017-04-15T11:40:03.120Z`` (VDA 5050 §6.4)."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


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
            "headerId": s.next_header_id(kind),
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
        answer_version(version)  # refuses 1.x / 3.x before anything changes
        s = self.session(manufacturer, serial_number)
        s.version = version
        if kind == "connection":
            return list(on_connection(s, message, now))
        if kind == "state":
            return self._on_state(s, message, now)
        if kind == "factsheet":
            s.factsheet = message
            return []
        return []  # visualization: for viewers, not for logic

    def tick(self, now: float) -> VdaOutput:
        """Timer input: AGVs silent for ``liveness_s`` are lost."""
        return list(silent(self.sessions.values(), now, self.liveness_s))

    def _on_state(self, s: AgvSession, state: dict[str, Any], now: float) -> VdaOutput:
        out: VdaOutput = list(observe_state(s, state, now))
        if s.active is not None:
            a = s.active
            out.extend(self._carry_out(s, a, track(s, a, state, now, self.resend_after_s), now))
        out.extend(self._dispatch(s, now))
        return out

    def _carry_out(self, s: AgvSession, a: RunningOrder, tracked: Tracked, now: float) -> VdaOutput:
        """Send what tracking asked for, in place among its outcomes."""
        out: VdaOutput = []
        for item in tracked:
            if item == "resend":
                out.append(self._send(s, "order", a.message, now))
            elif item == "cancel_order":
                out.append(self._instant(s, "cancelOrder", now)[1])
            elif item == "release":
                out.extend(self.release(s.manufacturer, s.serial_number, now))
            elif not isinstance(item, str):
                out.append(item)
        return out

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
        job = RobotStep(workflow_id, step_id, attempt, goal,
                   tuple(path) if path is not None else None, tuple(actions))
        if s.lost:
            return [step_failed(s, job, "", "agv_lost", f"AGV {serial_number} is lost", True)]
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
            failed = step_failed(s, job, "", "no_route", str(exc)[:200], True)
            return [failed, *self._dispatch(s, now)]
        self._orders += 1
        order_id = f"{job.workflow_id}.{job.step_id}.{job.attempt}.{self._orders}"
        plan = OrderPlan(order_id, path, job.actions, base_length=self.base_length)
        body = plan.body()
        assert s.state is not None  # not busy implies a state was heard
        known = frozenset((str(e.get("errorType")), str(e.get("errorDescription", "")))
                          for e in s.state.get("errors", []))
        s.active = RunningOrder(job, plan, body, now, known_errors=known)
        return [self._send(s, "order", body, now)]

    def _route(self, s: AgvSession, job: RobotStep) -> list[PathNode]:
        """The order's route: the step's own path, or one planned on the map from where the
        AGV stands; a ``ValueError`` that says in words what the map lacks (it becomes the
        step failure's message)."""
        here = str(s.state.get("lastNodeId", "")) if s.state else ""
        if job.path is not None and (self.graph is None or not here
                                     or job.path[0].node_id == here):
            return list(job.path)
        goal = job.goal if job.path is None else job.path[-1].node_id
        assert goal is not None and self.graph is not None
        on = f"map {self.graph.graph['map_id']}" if "map_id" in self.graph.graph else "the map"
        if not here:
            raise ValueError(f"{s.serial_number} reports no lastNodeId: where it stands on "
                             f"{on} is unknown")
        if here not in self.graph:
            raise ValueError(f"{s.serial_number} stands on {here}, which is not on {on}")
        if goal not in self.graph:
            raise ValueError(f"the step's location {goal} is not on {on}")
        try:
            return path_from_graph(self.graph, here, goal)
        except nx.NetworkXNoPath:
            raise ValueError(f"no route from {here} to {goal} on {on}") from None

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
        body: dict[str, Any] = {"actions": [action]}
        if s.answer_version.startswith("2.0."):
            # Fielded 2.0 AGVs read the document's `actions` or the early draft schema's
            # `instantActions`, and refuse a message without theirs; neither schema forbids
            # the other key, so both get the same array.
            body["instantActions"] = copy.deepcopy(body["actions"])
        return action_id, self._send(s, "instantActions", body, now)

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

