"""A simulated AGV that follows VDA 5050 2.0/2.1, sans-IO: messages and time in, messages out.

It takes orders exactly as §6.6 says (Figure 8: validation, new order vs update, stitching,
deprecated and duplicate updates, busy vehicle), drives along released nodes at a set
speed, runs node actions one at a time (INITIALIZING → RUNNING → FINISHED), honours the
instant actions cancelOrder, startPause/stopPause, stateRequest and factsheetRequest, and
can be told to fail an action, raise an e-stop, violate a field or change operating mode.

Every method returns ``Out`` tuples ``(kind, message)``: the runner publishes them on the
AGV's own ``{kind}`` topic. Limitations: node actions only (edge actions are refused with
orderError), no trajectories, corridors or zones, no maps handling.

Which key it reads the instant-action array from is configurable (``instant_key``): the
document's ``actions``, or ``instantActions`` as an early 2.0 draft schema named it and some
fielded 2.0 AGVs still expect. It reads only that key, as such an AGV would, and refuses a
message without it with a ``validationError``.

This module is the protocol; the vehicle under it (driving, actions, time) is
``agents_sim._vda_agv_vehicle``, the order records and checks ``agents_sim._vda_agv_order``.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from agents_sim._vda_agv_order import (
    INSTANT_TYPES,
    NODE_ACTIONS,
    ORDER_WARNINGS,
    TERMINAL,
    AgvAction,
    OrderEdge,
    OrderNode,
    error_ref,
    order_problems,
)
from agents_sim._vda_agv_vehicle import AgvVehicle

__all__ = ["AgvModel", "InstantKey", "Out"]

Out = tuple[str, dict[str, Any]]
"""``(kind, message)``: kind is ``state``, ``connection`` or ``factsheet``."""

InstantKey = Literal["actions", "instantActions"]
"""Where an AGV reads the instant-action array: the document's name, or the early 2.0 draft
schema's."""


class AgvModel(AgvVehicle):
    """One simulated AGV. Time only moves when ``step(now)`` or a ``receive_*`` is called."""

    def __init__(
        self,
        manufacturer: str,
        serial_number: str,
        *,
        node_id: str,
        x: float,
        y: float,
        map_id: str = "map",
        version: str = "2.1.0",
        speed: float = 1.0,
        action_s: float = 2.0,
        state_interval_s: float = 30.0,
        tolerance_m: float = 0.1,
        instant_key: InstantKey = "actions",
        now: float = 0.0,
    ) -> None:
        super().__init__(node_id=node_id, x=x, y=y, map_id=map_id, speed=speed,
                         action_s=action_s, now=now)
        self.manufacturer, self.serial_number, self.version = manufacturer, serial_number, version
        self.state_interval_s: float = state_interval_s
        """Longest gap between state messages (the spec's maximum is 30 s)."""
        self.tolerance_m: float = tolerance_m
        """Position tolerance for "standing on a node" when ``allowedDeviationXY`` is 0."""
        if instant_key not in ("actions", "instantActions"):
            raise ValueError(f"instant_key must be 'actions' or 'instantActions', "
                             f"not {instant_key!r}")
        self.instant_key: InstantKey = instant_key
        """The only key this AGV reads instant actions from."""
        self.refused_instants: set[str] = set()
        """Instant action types it refuses (``refuse_instant``)."""
        self.order_id, self.order_update_id = "", 0
        self.battery_charge: float = 80.0
        """State of charge it reports (``batteryState.batteryCharge``), percent; a host that
        models driving (the simulator) lowers it."""
        self.headers: dict[str, int] = {}
        """Last ``headerId`` per topic."""
        self._last_sig = ""
        self._last_state_at = -math.inf

    # --- messages out ----------------------------------------------------------------

    def _header(self, kind: str, now: float) -> dict[str, Any]:
        n = self.headers.get(kind, -1) + 1
        self.headers[kind] = n
        return {"headerId": n, "timestamp": _stamp(now), "version": self.version,
                "manufacturer": self.manufacturer, "serialNumber": self.serial_number}

    def connection(self, state: str, now: float) -> Out:
        """A ``connection`` message (ONLINE, OFFLINE, or CONNECTIONBROKEN for the will)."""
        return "connection", {**self._header("connection", now), "connectionState": state}

    def _body(self) -> dict[str, Any]:
        released_left = [n for n in self.nodes if n.released]
        horizon = any(not n.released for n in self.nodes)
        body: dict[str, Any] = {
            "orderId": self.order_id,
            "orderUpdateId": self.order_update_id,
            "lastNodeId": self.last_node_id,
            "lastNodeSequenceId": self.last_node_seq,
            "nodeStates": [_node_state(n) for n in self.nodes],
            "edgeStates": [{"edgeId": e.edge_id, "sequenceId": e.seq, "released": e.released}
                           for e in self.edges],
            "driving": self.driving,
            "paused": self.paused,
            "newBaseRequest": horizon and len(released_left) <= 1,
            "operatingMode": self.operating_mode,
            "actionStates": [_action_state(a) for a in self.actions.values()],
            "errors": copy.deepcopy(self.errors),
            "loads": copy.deepcopy(self.loads),
            "safetyState": {"eStop": self.e_stop, "fieldViolation": self.field_violation},
        }
        if not self.version.startswith("2.0."):
            body["maps"] = [{"mapId": self.map_id, "mapVersion": "1", "mapStatus": "ENABLED"}]
        return body

    def state(self, now: float) -> Out:
        """A full ``state`` message now."""
        body = self._body()
        self._last_sig = json.dumps(body, sort_keys=True)
        self._last_state_at = now
        return "state", {
            **self._header("state", now), **body,
            "agvPosition": {"x": self.x, "y": self.y, "theta": self.theta,
                            "mapId": self.map_id, "positionInitialized": True},
            "velocity": {"vx": self.speed if self.driving else 0.0, "vy": 0.0, "omega": 0.0},
            "batteryState": {"batteryCharge": self.battery_charge, "charging": False},
        }

    def factsheet(self, now: float) -> Out:
        """This AGV's ``factsheet`` (retained by the runner)."""
        return "factsheet", {**self._header("factsheet", now),
                             **_factsheet_fields(self.version, self.speed, self.state_interval_s)}

    def _publish_if_changed(self, now: float, force: bool = False) -> list[Out]:
        sig = json.dumps(self._body(), sort_keys=True)
        if force or sig != self._last_sig or now - self._last_state_at >= self.state_interval_s:
            return [self.state(now)]
        return []

    # --- orders (§6.6) ---------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Figure 8 (3): nodes to traverse, or actions neither FINISHED nor FAILED."""
        return bool(self.nodes) or any(a.status not in TERMINAL for a in self.actions.values())

    def _reject(self, etype: str, text: str, order: dict[str, Any], now: float,
                extra: Sequence[dict[str, str]] = (), topic: str = "order") -> list[Out]:
        """§6.6.4: keep the current order, report a WARNING naming the refused message."""
        refs = [error_ref("topic", topic)]
        if isinstance(order.get("headerId"), int):
            refs.insert(0, error_ref("headerId", order["headerId"]))
        if isinstance(order.get("orderId"), str):
            refs.append(error_ref("orderId", order["orderId"]))
        if isinstance(order.get("orderUpdateId"), int):
            refs.append(error_ref("orderUpdateId", order["orderUpdateId"]))
        self.errors.append({"errorType": etype, "errorLevel": "WARNING",
                            "errorDescription": text, "errorReferences": refs + list(extra)})
        return [self.state(now)]

    def receive_invalid(self, message: object, reason: str, now: float,
                        topic: str = "order") -> list[Out]:
        """A message that failed JSON/schema validation, or came on a topic this AGV does
        not read: a ``validationError`` WARNING referencing the topic (§6.6.4.1 for orders;
        an instant action is treated alike). Nothing of it is taken."""
        self._advance(now)
        return self._reject("validationError", reason[:200],
                            message if isinstance(message, dict) else {}, now, topic=topic)

    def _reachable(self, node: dict[str, Any]) -> bool:
        """Figure 8 (4): on the node, or within its deviation range."""
        pos = node.get("nodePosition")
        if pos is None:
            return bool(node["nodeId"] == self.last_node_id)
        radius = max(pos.get("allowedDeviationXY", 0.0), self.tolerance_m)
        return bool(math.hypot(pos["x"] - self.x, pos["y"] - self.y) <= radius)

    def receive_order(self, order: dict[str, Any], now: float) -> list[Out]:
        """Figure 8 of §6.6.2, step by step. Returns the state to publish, if any."""
        self._advance(now)
        problem = order_problems(order, self.manufacturer, self.serial_number)
        if problem is not None:
            return self._reject(problem[0], problem[1], order, now, problem[2])
        nodes = order["nodes"]
        if order["orderId"] != self.order_id:  # (2) a new order
            if self.busy:  # (3)
                return self._reject("orderError", "vehicle is busy with another order", order,
                                    now)
            if not self._reachable(nodes[0]):  # (4)
                return self._reject("noRouteError", "start node is not where the vehicle is",
                                    order, now, [error_ref("nodeId", nodes[0]["nodeId"])])
            self.actions = {k: a for k, a in self.actions.items()
                            if a.instant and a.status not in TERMINAL}
            self.run_queue = [k for k in self.run_queue if k in self.actions]
            self.cancel_id = None
            self._accept(order, append_from=0)
            return self._publish_if_changed(now, force=True)
        update = order["orderUpdateId"]
        if update < self.order_update_id:  # (5) deprecated
            return self._reject("orderUpdateError", "orderUpdateId is lower than the current",
                                order, now)
        if update == self.order_update_id:  # (6) duplicate: discard silently
            return []
        first = nodes[0]
        if self.busy:  # (7) continuation of the running order
            released = [n for n in self.nodes if n.released]
            point = ((released[-1].node_id, released[-1].seq) if released
                     else (self.last_node_id, self.last_node_seq))
            if (first["nodeId"], first["sequenceId"]) != point:
                return self._reject("orderUpdateError", "update does not start at the decision "
                                    "point", order, now, [error_ref("nodeId", first["nodeId"])])
            self.nodes = [n for n in self.nodes if n.released]
            self.edges = [e for e in self.edges if e.released]
        elif (first["nodeId"], first["sequenceId"]) != (self.last_node_id,
                                                       self.last_node_seq):  # (8)
            return self._reject("orderUpdateError", "update does not continue from the last "
                                "node", order, now, [error_ref("nodeId", first["nodeId"])])
        self._accept(order, append_from=1)
        return self._publish_if_changed(now, force=True)

    def _accept(self, order: dict[str, Any], append_from: int) -> None:
        """(9): take the order and populate/append node, edge and action states."""
        self.order_id, self.order_update_id = order["orderId"], order["orderUpdateId"]
        self.errors = [e for e in self.errors if e["errorType"] not in ORDER_WARNINGS]
        for n in order["nodes"][append_from:]:
            pos = n.get("nodePosition") or {}
            node = OrderNode(n["nodeId"], n["sequenceId"], n["released"], pos.get("x"),
                         pos.get("y"), pos.get("mapId"), pos.get("allowedDeviationXY", 0.0))
            for act in n["actions"]:
                params = {p["key"]: p["value"] for p in act.get("actionParameters", [])}
                self.actions[act["actionId"]] = AgvAction(act["actionId"], act["actionType"],
                                                        act["blockingType"], params)
                node.action_ids.append(act["actionId"])
            self.nodes.append(node)
        self.edges.extend(OrderEdge(e["edgeId"], e["sequenceId"], e["released"])
                          for e in order["edges"])
        if append_from == 0:
            self._traverse(self.nodes[0])  # the first node is trivially reachable

    # --- instant actions (§6.9) ------------------------------------------------------

    def receive_instant_actions(self, message: dict[str, Any], now: float) -> list[Out]:
        """Run each instant action found under ``instant_key``; returns state (and
        factsheet) messages to publish. A message without that key, or with an action
        lacking ``actionId``/``actionType``/``blockingType``, is refused whole with a
        ``validationError``."""
        actions = message.get(self.instant_key) if isinstance(message, dict) else None
        problem = _instant_problem(actions, self.instant_key)
        if problem is not None:
            return self.receive_invalid(message, problem, now, topic="instantActions")
        self._advance(now)
        out: list[Out] = []
        assert isinstance(actions, list)  # _instant_problem said so
        for act in actions:
            aid, kind = act["actionId"], act["actionType"]
            a = AgvAction(aid, kind, act["blockingType"], {}, status="FINISHED", instant=True)
            self.actions[aid] = a
            if kind in self.refused_instants:
                a.status, a.result = "FAILED", f"{kind} refused"
                self.errors.append({"errorType": "instantActionRefused", "errorLevel": "WARNING",
                                    "errorDescription": f"{kind} refused",
                                    "errorReferences": [error_ref("actionId", aid)]})
            elif kind == "cancelOrder":
                has_order = bool(self.nodes) or any(
                    not x.instant and x.status not in TERMINAL for x in self.actions.values())
                if not has_order or self.cancel_id is not None:  # §6.6.3.2
                    a.status = "FAILED"
                    self.errors.append({"errorType": "noOrderToCancel", "errorLevel": "WARNING",
                                        "errorReferences": [error_ref("actionId", aid)]})
                else:
                    self.cancel_id, a.status = aid, "RUNNING"
                    for x in self.actions.values():  # §6.6.3: scheduled/running actions FAIL
                        if not x.instant and x.status not in TERMINAL:
                            x.status = "FAILED"
                    self.run_queue = [k for k in self.run_queue if self.actions[k].instant]
                    self._finish_cancel_if_stopped()
            elif kind == "startPause":
                self.paused = True
            elif kind == "stopPause":
                self.paused = False
            elif kind == "stateRequest":
                pass  # the state below answers it
            elif kind == "factsheetRequest":
                out.append(self.factsheet(now))
            else:
                a.status = "FAILED"
                self.errors.append({"errorType": "unsupportedInstantAction",
                                    "errorLevel": "WARNING",
                                    "errorReferences": [error_ref("actionId", aid)]})
        return [self.state(now), *out]  # action states changed: always report

    def refuse_instant(self, action_type: str) -> None:
        """Test knob: from now on, instant actions of this type FAIL (with a WARNING naming
        the action) and are not performed."""
        self.refused_instants.add(action_type)

    # --- time ------------------------------------------------------------------------

    def step(self, now: float) -> list[Out]:
        """Advance to ``now``; returns a state message if anything relevant changed."""
        self._advance(now)
        return self._publish_if_changed(now)

    def next_step_in(self) -> float:
        """Seconds from ``now`` until ``step`` has something to say: the next change of
        driving or of a node action (``next_change_in``), or the next periodic state,
        whichever comes first. A host in simulated time sleeps that long (or until a
        message arrives). Relative, as a residue of an edge may lie below an absolute
        clock's resolution."""
        due = self._last_state_at + self.state_interval_s - self.now
        change = self.next_change_in()
        return due if change is None else min(due, change)


def _instant_problem(actions: object, key: str) -> str | None:
    """Why an instant-action array cannot be performed, or None."""
    if not isinstance(actions, list):
        return f"instantActions has no {key!r} array (the key this AGV reads)"
    for i, act in enumerate(actions):
        if not isinstance(act, dict) or not all(
                isinstance(act.get(f), str) for f in ("actionId", "actionType", "blockingType")):
            return f"{key}[{i}] is not an action with actionId, actionType and blockingType"
    return None


def _stamp(now: float) -> str:
    """ISO 8601 UTC with milliseconds (VDA 5050 §6.4), e.g. ``2024-01-01T00:00:00.000Z``."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _node_state(n: OrderNode) -> dict[str, Any]:
    """The ``nodeStates`` entry of a node still ahead."""
    out: dict[str, Any] = {"nodeId": n.node_id, "sequenceId": n.seq, "released": n.released}
    if n.x is not None and n.y is not None and n.map_id is not None:
        out["nodePosition"] = {"x": n.x, "y": n.y, "mapId": n.map_id}
    return out


def _action_state(a: AgvAction) -> dict[str, Any]:
    """The ``actionStates`` entry of an action."""
    out: dict[str, Any] = {"actionId": a.action_id, "actionType": a.action_type,
                           "actionStatus": a.status}
    if a.result is not None:
        out["resultDescription"] = a.result
    return out


def _factsheet_fields(version: str, speed: float, state_interval_s: float) -> dict[str, Any]:
    """The body of the AGV's ``factsheet`` (no header): a small carrier that performs
    ``NODE_ACTIONS`` and ``INSTANT_TYPES``; 2.1 adds ``vehicleConfig``."""
    actions = [{"actionType": t, "actionScopes": ["NODE"]} for t in sorted(NODE_ACTIONS)]
    actions += [{"actionType": t, "actionScopes": ["INSTANT"]} for t in sorted(INSTANT_TYPES)]
    msg: dict[str, Any] = {
        "typeSpecification": {
            "seriesName": "fleetflow-test-agv", "agvKinematic": "DIFF", "agvClass": "CARRIER",
            "maxLoadMass": 500, "localizationTypes": ["NATURAL"],
            "navigationTypes": ["VIRTUAL_LINE_GUIDED"],
        },
        "physicalParameters": {"speedMin": 0.01, "speedMax": speed,
                               "accelerationMax": 1.0, "decelerationMax": 1.0,
                               "heightMin": 0.3, "heightMax": 0.4, "width": 0.8,
                               "length": 1.2},
        "protocolLimits": {"maxStringLens": {}, "maxArrayLens": {},
                           "timing": {"minOrderInterval": 0.0, "minStateInterval": 0.0,
                                      "defaultStateInterval": state_interval_s}},
        "protocolFeatures": {"optionalParameters": [], "agvActions": actions},
        "agvGeometry": {},
        "loadSpecification": {"loadPositions": ["default"]},
    }
    if not version.startswith("2.0."):
        msg["vehicleConfig"] = {"versions": [{"key": "sim", "value": "fleetflow"}]}
    return msg
