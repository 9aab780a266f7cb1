"""VDA 5050 2.x master control, sans-IO: one ``VdaMaster`` per facility, one ``AgvSession``
per AGV.

Inputs are decoded messages (``topics.decode_vda`` did size, NaN and schema checks) and the
current time; outputs are ``VdaMessage`` s to publish and step-level outcomes
(``edge_runtime.vda5050._outcomes``). No clocks, no sockets: the edge core and the simulator
drive it alike, and a replay of the same inputs gives the same outputs. What an AGV's
``state`` and ``connection`` messages mean for its step is worked out in
``edge_runtime.vda5050._track`` (and for instant actions in ``_instants``), on the sessions
of ``edge_runtime.vda5050._session``; this module sends the orders and instant actions. The
sessions and counters are durable records (``_records``): the edge commits those that
changed with each batch, and a restarted edge takes up the orders its AGVs still run.

Each AGV is answered in the protocol version its own headers carry (2.0.x or 2.1.x); a 2.0
AGV never receives a 2.1-only field, and gets its instant actions under both ``actions`` (the
2.0.0 document and schema) and ``instantActions`` (the early 2.0 draft schema some fielded
2.0 AGVs follow). ``headerId`` counts per topic per AGV.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import networkx as nx

from edge_runtime.vda5050._instants import due_instants, observe_instants
from edge_runtime.vda5050._order import (
    VERSION_ONLY_FIELDS,
    ActionSpec,
    OrderPlan,
    PathNode,
    route_for,
    strip_for_version,
)
from edge_runtime.vda5050._outcomes import (
    VdaMessage,
    VdaOutput,
    VdaStepCancelled,
)
from edge_runtime.vda5050._records import MasterState
from edge_runtime.vda5050._session import (
    AgvSession,
    RobotStep,
    RunningOrder,
    SentInstant,
    answer_version,
)
from edge_runtime.vda5050._track import (
    Tracked,
    observe_state,
    on_connection,
    rejected,
    silent,
    step_failed,
    track,
)
from topics import ProtocolError, VdaTopic, parse_topic, vda_topic

__all__ = ["VdaMaster", "vda_timestamp"]


def vda_timestamp(now: float) -> str:
    """ISO 8601 UTC with milliseconds, e.g. ``2017-04-15T11:40:03.120Z`` (VDA 5050 §6.4)."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class VdaMaster(MasterState):
    """VDA 5050 master control for one facility's AGVs (``MasterState``: its records)."""

    def __init__(
        self,
        *,
        graph: nx.Graph[Any] | None = None,
        base_length: int | None = None,
        resend_after_s: float = 5.0,
        instant_sends: int = 5,
        liveness_s: float = 60.0,
        interface: str = "uagv",
        major: str = "v2",
    ) -> None:
        super().__init__()
        self.graph: nx.Graph[Any] | None = graph
        """Facility map used to plan routes (``x``, ``y``, ``map_id`` node attributes)."""
        self.base_length: int | None = base_length
        """Nodes released per order message; None releases the whole route at once."""
        self.resend_after_s: float = resend_after_s
        """An order not acknowledged in a state this long after sending is sent again
        (same ids: the AGV discards a duplicate, §6.6.4.3) — QoS 0 may lose it. So is an
        instant action no state has shown yet (same actionId, new headerId)."""
        self.instant_sends: int = instant_sends
        """An instant action sent this often without any state showing it counts as refused."""
        self.liveness_s: float = liveness_s
        """No state for this long means the AGV is lost (the spec's state period is 30 s)."""
        self.interface: str = interface
        self.major: str = major
        self.rejections: dict[tuple[str, str], int] = {}
        """Orders or updates each AGV rejected since this master was made, by
        (manufacturer, serialNumber): link health (``_health``), not a record — a restarted
        edge counts afresh."""

    # --- wiring ----------------------------------------------------------------------

    def subscriptions(self) -> list[str]:
        """Topic filters the shell subscribes to (QoS 0, connection QoS 1)."""
        base = f"{self.interface}/{self.major}/+/+"
        return [f"{base}/state", f"{base}/connection", f"{base}/factsheet"]

    def _send(self, s: AgvSession, kind: Literal["order", "instantActions"],
              body: dict[str, Any], now: float) -> VdaMessage:
        self.touch(s)
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
        self.touch(s, material=kind != "state")  # a state alone refreshes, see _records
        if kind == "connection":
            return list(on_connection(s, message, now))
        if kind == "state":
            lost = s.lost
            out = self._on_state(s, message, now)
            if out or s.lost != lost:
                self.touch(s)
            return out
        if kind == "factsheet":
            s.factsheet = message
            return []
        return []  # visualization: for viewers, not for logic

    def tick(self, now: float) -> VdaOutput:
        """Timer input: AGVs silent for ``liveness_s`` are lost; instant actions no state
        has shown for ``resend_after_s`` go again."""
        out: VdaOutput = []
        for s in self.sessions.values():
            lost = silent([s], now, self.liveness_s)
            if lost:
                self.touch(s)
            out.extend(lost)
            out.extend(self._instants_due(s, now))
        return out

    def _on_state(self, s: AgvSession, state: dict[str, Any], now: float) -> VdaOutput:
        out: VdaOutput = list(observe_state(s, state, now))
        out.extend(observe_instants(s, state))
        if s.active is not None:
            a = s.active
            tracked = track(s, a, state, now, self.resend_after_s)
            if rejected(tracked):
                key = (s.manufacturer, s.serial_number)
                self.rejections[key] = self.rejections.get(key, 0) + 1
            out.extend(self._carry_out(s, a, tracked, now))
        out.extend(self._instants_due(s, now))
        out.extend(self._dispatch(s, now))
        return out

    def _instants_due(self, s: AgvSession, now: float) -> VdaOutput:
        """Resend the instant actions of ``s`` no state has shown; give up on some."""
        if not s.instants:
            return []
        resend, given_up = due_instants(s, now, self.resend_after_s, self.instant_sends)
        out: VdaOutput = list(given_up)
        for action_id in resend:
            sent = s.instants[action_id]
            msg = self._send(s, "instantActions", sent.body, now)
            sent.header_ids.append(int(msg.message["headerId"]))
            sent.sends, sent.sent_at = sent.sends + 1, now
            out.append(msg)
        if given_up:
            self.touch(s)
        return out

    def _carry_out(self, s: AgvSession, a: RunningOrder, tracked: Tracked, now: float) -> VdaOutput:
        """Send what tracking asked for, in place among its outcomes."""
        out: VdaOutput = []
        for item in tracked:
            if item == "resend":
                out.append(self._send(s, "order", a.message, now))
            elif item == "cancel_order":  # stop an order whose step failed
                out.append(self._instant(s, "cancelOrder", now, order_id=a.plan.order_id)[1])
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
        known = [*s.queue, *([s.active.job] if s.active is not None else [])]
        if any((j.workflow_id, j.step_id, j.attempt) == (workflow_id, step_id, attempt)
               for j in known):
            return []  # assigned again (a restarted core, a resent command): one order only
        if s.lost:
            return [step_failed(s, job, "", "agv_lost", f"AGV {serial_number} is lost", True)]
        self.touch(s)
        s.queue.append(job)
        return self._dispatch(s, now)

    def _dispatch(self, s: AgvSession, now: float) -> VdaOutput:
        """Send the next queued step if the AGV is free and under our control."""
        if not s.queue or s.busy or not s.controllable:
            return []
        job = s.queue.popleft()
        try:
            here = str(s.state.get("lastNodeId", "")) if s.state else ""
            path = route_for(self.graph, s.serial_number, here, job.path, job.goal)
        except (nx.NetworkXException, KeyError, ValueError) as exc:
            failed = step_failed(s, job, "", "no_route", str(exc)[:200], True)
            return [failed, *self._dispatch(s, now)]
        order_id = f"{job.workflow_id}.{job.step_id}.{job.attempt}.{self.next_order()}"
        plan = OrderPlan(order_id, path, job.actions, base_length=self.base_length)
        body = plan.body()
        assert s.state is not None  # not busy implies a state was heard
        known = frozenset((str(e.get("errorType")), str(e.get("errorDescription", "")))
                          for e in s.state.get("errors", []))
        s.active = RunningOrder(job, plan, body, now, known_errors=known)
        return [self._send(s, "order", body, now)]

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

    def holds(self, manufacturer: str, serial_number: str, workflow_id: str,
              step_id: str) -> bool:
        """Whether the step is queued for the AGV or its order running there."""
        s = self.sessions.get((manufacturer, serial_number))
        if s is None:
            return False
        jobs = [*s.queue, *([s.active.job] if s.active is not None else [])]
        return any((j.workflow_id, j.step_id) == (workflow_id, step_id) for j in jobs)

    def cancel(self, manufacturer: str, serial_number: str, *, workflow_id: str,
               step_id: str, now: float, command_id: str | None = None) -> VdaOutput:
        """Withdraw a step: drop it from the queue (``VdaStepCancelled`` at once), or send
        ``cancelOrder`` if it runs (once: a second cancel waits for the first's answer).
        The step's end is reported once the AGV stopped (``_track``)."""
        s = self.session(manufacturer, serial_number)
        for job in list(s.queue):
            if (job.workflow_id, job.step_id) == (workflow_id, step_id):
                s.queue.remove(job)
                self.touch(s)
                return [VdaStepCancelled(manufacturer, serial_number, workflow_id, step_id,
                                         job.attempt, "")]
        a = s.active
        if a is None or (a.job.workflow_id, a.job.step_id) != (workflow_id, step_id) or (
                a.cancel_action_id is not None):
            return []
        action_id, msg = self._instant(s, "cancelOrder", now, command_id=command_id,
                                       order_id=a.plan.order_id)
        a.cancel_action_id = action_id
        return [msg]

    def _instant(self, s: AgvSession, action_type: str, now: float,
                 params: Mapping[str, Any] | None = None,
                 blocking: Literal["NONE", "SOFT", "HARD"] = "NONE", *,
                 command_id: str | None = None, order_id: str = "",
                 ) -> tuple[str, VdaMessage]:
        if s.answer_version.startswith("2.0.") and (
            action_type in VERSION_ONLY_FIELDS["instantActions.actionType"]
        ):
            raise ValueError(f"{action_type} is VDA 5050 2.1; AGV {s.serial_number} speaks "
                             f"{s.version}")
        action_id = f"ia.{action_type}.{self.next_instant()}"
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
        msg = self._send(s, "instantActions", body, now)
        s.instants[action_id] = SentInstant(action_type, body, now, command_id, order_id,
                                            [int(msg.message["headerId"])])
        return action_id, msg

    def instant_action(self, manufacturer: str, serial_number: str, action_type: str,
                       now: float, params: Mapping[str, Any] | None = None,
                       blocking: Literal["NONE", "SOFT", "HARD"] = "NONE",
                       command_id: str | None = None) -> tuple[str, VdaMessage]:
        """Send any instant action; returns its ``actionId`` and the message. Its answer
        comes as a ``VdaInstantResult`` (naming ``command_id``, the core command it carries
        out, if any); unseen, it is resent."""
        return self._instant(self.session(manufacturer, serial_number), action_type, now,
                             params, blocking, command_id=command_id)

    def pause(self, manufacturer: str, serial_number: str, now: float,
              command_id: str | None = None) -> VdaOutput:
        """``startPause``: the AGV stops driving; the order stays resumable."""
        return [self.instant_action(manufacturer, serial_number, "startPause", now,
                                    blocking="HARD", command_id=command_id)[1]]

    def resume(self, manufacturer: str, serial_number: str, now: float,
               command_id: str | None = None) -> VdaOutput:
        """``stopPause``: resume driving and paused actions."""
        return [self.instant_action(manufacturer, serial_number, "stopPause", now,
                                    blocking="HARD", command_id=command_id)[1]]

    def request_state(self, manufacturer: str, serial_number: str, now: float) -> VdaOutput:
        """``stateRequest``: ask for a state message now."""
        return [self.instant_action(manufacturer, serial_number, "stateRequest", now)[1]]

    def request_factsheet(self, manufacturer: str, serial_number: str,
                          now: float) -> VdaOutput:
        """``factsheetRequest``: ask the AGV to publish its factsheet."""
        return [self.instant_action(manufacturer, serial_number, "factsheetRequest", now)[1]]
