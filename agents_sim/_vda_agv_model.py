"""A simulated AGV that follows VDA 5050 2.0/2.1, sans-IO: messages and time in, messages out.

It takes orders exactly as §6.6 says (Figure 8: validation, new order vs update, stitching,
deprecated and duplicate updates, busy vehicle), drives along released nodes at a set
speed, runs node actions one at a time (INITIALIZING → RUNNING → FINISHED), honours the
instant actions cancelOrder, startPause/stopPause, stateRequest and factsheetRequest, and
can be told to fail an action, raise an e-stop, violate a field or change operating mode.

Every method returns ``Out`` tuples ``(kind, message)``: the runner publishes them on the
AGV's own ``{kind}`` topic. Limitations: node actions only (edge actions are refused with
orderError), no trajectories, corridors or zones, no maps handling.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["AgvModel", "Out"]

Out = tuple[str, dict[str, Any]]
"""``(kind, message)``: kind is ``state``, ``connection`` or ``factsheet``."""

_TERMINAL = frozenset({"FINISHED", "FAILED"})
_ORDER_WARNINGS = frozenset({"validationError", "orderError", "orderUpdateError", "noRouteError"})
_INSTANT_TYPES = frozenset({"cancelOrder", "startPause", "stopPause", "stateRequest",
                            "factsheetRequest"})
_NODE_ACTIONS = frozenset({"pick", "drop", "finePositioning", "detectObject", "waitForTrigger"})


def _stamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _ref(key: str, value: object) -> dict[str, str]:
    return {"referenceKey": key, "referenceValue": str(value)}


@dataclass(slots=True)
class _Action:
    action_id: str
    action_type: str
    blocking: str
    params: dict[str, Any]
    status: str = "WAITING"
    left: float = 0.0
    """Seconds of the current phase (INITIALIZING or RUNNING) still to go."""
    instant: bool = False
    result: str | None = None
    resume: str = "RUNNING"
    """The phase a PAUSED action goes back to."""


@dataclass(slots=True)
class _Node:
    node_id: str
    seq: int
    released: bool
    x: float | None
    y: float | None
    map_id: str | None
    deviation: float
    action_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Edge:
    edge_id: str
    seq: int
    released: bool


class AgvModel:
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
        now: float = 0.0,
    ) -> None:
        self.manufacturer, self.serial_number, self.version = manufacturer, serial_number, version
        self.speed: float = speed
        """Metres per second on edges."""
        self.action_s: float = action_s
        """Duration of node actions (a fifth INITIALIZING, the rest RUNNING)."""
        self.state_interval_s: float = state_interval_s
        """Longest gap between state messages (the spec's maximum is 30 s)."""
        self.tolerance_m: float = tolerance_m
        """Position tolerance for "standing on a node" when ``allowedDeviationXY`` is 0."""
        self.x, self.y, self.theta, self.map_id = x, y, 0.0, map_id
        self.order_id, self.order_update_id = "", 0
        self.last_node_id, self.last_node_seq = node_id, 0
        self.nodes: list[_Node] = []
        self.edges: list[_Edge] = []
        self.actions: dict[str, _Action] = {}
        self.run_queue: list[str] = []
        self.errors: list[dict[str, Any]] = []
        self.loads: list[dict[str, Any]] = []
        self.paused = self.driving = self.field_violation = False
        self.e_stop = "NONE"
        self.operating_mode = "AUTOMATIC"
        self.cancel_id: str | None = None
        self.fail_types: set[str] = set()
        self.headers: dict[str, int] = {}
        self._t = now
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
            "nodeStates": [self._node_state(n) for n in self.nodes],
            "edgeStates": [{"edgeId": e.edge_id, "sequenceId": e.seq, "released": e.released}
                           for e in self.edges],
            "driving": self.driving,
            "paused": self.paused,
            "newBaseRequest": horizon and len(released_left) <= 1,
            "operatingMode": self.operating_mode,
            "actionStates": [self._action_state(a) for a in self.actions.values()],
            "errors": copy.deepcopy(self.errors),
            "loads": copy.deepcopy(self.loads),
            "safetyState": {"eStop": self.e_stop, "fieldViolation": self.field_violation},
        }
        if not self.version.startswith("2.0."):
            body["maps"] = [{"mapId": self.map_id, "mapVersion": "1", "mapStatus": "ENABLED"}]
        return body

    @staticmethod
    def _node_state(n: _Node) -> dict[str, Any]:
        out: dict[str, Any] = {"nodeId": n.node_id, "sequenceId": n.seq, "released": n.released}
        if n.x is not None and n.y is not None and n.map_id is not None:
            out["nodePosition"] = {"x": n.x, "y": n.y, "mapId": n.map_id}
        return out

    @staticmethod
    def _action_state(a: _Action) -> dict[str, Any]:
        out: dict[str, Any] = {"actionId": a.action_id, "actionType": a.action_type,
                               "actionStatus": a.status}
        if a.result is not None:
            out["resultDescription"] = a.result
        return out

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
            "batteryState": {"batteryCharge": 80.0, "charging": False},
        }

    def factsheet(self, now: float) -> Out:
        """This AGV's ``factsheet`` (retained by the runner)."""
        actions = [{"actionType": t, "actionScopes": ["NODE"]}
                   for t in sorted(_NODE_ACTIONS)]
        actions += [{"actionType": t, "actionScopes": ["INSTANT"]} for t in sorted(_INSTANT_TYPES)]
        msg: dict[str, Any] = {
            **self._header("factsheet", now),
            "typeSpecification": {
                "seriesName": "fleetflow-test-agv", "agvKinematic": "DIFF", "agvClass": "CARRIER",
                "maxLoadMass": 500, "localizationTypes": ["NATURAL"],
                "navigationTypes": ["VIRTUAL_LINE_GUIDED"],
            },
            "physicalParameters": {"speedMin": 0.01, "speedMax": self.speed,
                                   "accelerationMax": 1.0, "decelerationMax": 1.0,
                                   "heightMin": 0.3, "heightMax": 0.4, "width": 0.8,
                                   "length": 1.2},
            "protocolLimits": {"maxStringLens": {}, "maxArrayLens": {},
                               "timing": {"minOrderInterval": 0.0, "minStateInterval": 0.0,
                                          "defaultStateInterval": self.state_interval_s}},
            "protocolFeatures": {"optionalParameters": [], "agvActions": actions},
            "agvGeometry": {},
            "loadSpecification": {"loadPositions": ["default"]},
        }
        if not self.version.startswith("2.0."):
            msg["vehicleConfig"] = {"versions": [{"key": "sim", "value": "fleetflow"}]}
        return "factsheet", msg

    def _publish_if_changed(self, now: float, force: bool = False) -> list[Out]:
        sig = json.dumps(self._body(), sort_keys=True)
        if force or sig != self._last_sig or now - self._last_state_at >= self.state_interval_s:
            return [self.state(now)]
        return []

    # --- test knobs ------------------------------------------------------------------

    def fail_next(self, action_type: str) -> None:
        """The next action of this type ends FAILED (with a WARNING error naming it)."""
        self.fail_types.add(action_type)

    def set_e_stop(self, kind: str = "MANUAL") -> None:
        """Raise (AUTOACK/MANUAL/REMOTE) or clear (NONE) the e-stop."""
        self.e_stop = kind

    def set_field_violation(self, violated: bool) -> None:
        """Protective field violated or clear."""
        self.field_violation = violated

    def set_operating_mode(self, mode: str) -> None:
        """Switch mode; entering or leaving MANUAL clears the order (§6.10.6 Table 1)."""
        if (mode == "MANUAL") != (self.operating_mode == "MANUAL"):
            self._drop_order()
        self.operating_mode = mode

    def raise_fatal(self, error_type: str = "laserScannerContaminated") -> None:
        """Add a FATAL error: the AGV stops until ``clear_errors``."""
        self.errors.append({"errorType": error_type, "errorLevel": "FATAL",
                            "errorDescription": "needs human intervention"})

    def clear_errors(self) -> None:
        """Forget every error (an operator fixed the vehicle)."""
        self.errors.clear()

    # --- orders (§6.6) ---------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Figure 8 (3): nodes to traverse, or actions neither FINISHED nor FAILED."""
        return bool(self.nodes) or any(a.status not in _TERMINAL for a in self.actions.values())

    def _reject(self, etype: str, text: str, order: dict[str, Any], now: float,
                extra: Sequence[dict[str, str]] = ()) -> list[Out]:
        """§6.6.4: keep the current order, report a WARNING naming the refused order."""
        refs = [_ref("headerId", order.get("headerId")), _ref("topic", "order")]
        if isinstance(order.get("orderId"), str):
            refs.append(_ref("orderId", order["orderId"]))
        if isinstance(order.get("orderUpdateId"), int):
            refs.append(_ref("orderUpdateId", order["orderUpdateId"]))
        self.errors.append({"errorType": etype, "errorLevel": "WARNING",
                            "errorDescription": text, "errorReferences": refs + list(extra)})
        return [self.state(now)]

    def receive_invalid(self, order: object, reason: str, now: float) -> list[Out]:
        """An order that failed JSON/schema validation (§6.6.4.1): validationError."""
        return self._reject("validationError", reason,
                            order if isinstance(order, dict) else {}, now)

    def _problems(self, order: dict[str, Any]) -> tuple[str, str, list[dict[str, str]]] | None:
        nodes, edges = order["nodes"], order["edges"]
        if (order["manufacturer"], order["serialNumber"]) != (self.manufacturer,
                                                              self.serial_number):
            return "validationError", "order is addressed to another AGV", []
        if not nodes or len(edges) != len(nodes) - 1:
            return "validationError", "an order needs n nodes and n-1 edges", []
        seen_release_end = False
        for i, n in enumerate(nodes):
            if n["sequenceId"] != nodes[0]["sequenceId"] + 2 * i or n["sequenceId"] % 2:
                return "validationError", "node sequenceIds must be even and consecutive", [
                    _ref("nodeId", n["nodeId"])]
            if seen_release_end and n["released"]:
                return "validationError", "a released node follows the horizon", [
                    _ref("nodeId", n["nodeId"])]
            seen_release_end |= not n["released"]
        if not nodes[0]["released"]:
            return "validationError", "the first node must be released", []
        for i, e in enumerate(edges):
            a, b = nodes[i], nodes[i + 1]
            if (e["sequenceId"] != a["sequenceId"] + 1 or e["startNodeId"] != a["nodeId"]
                    or e["endNodeId"] != b["nodeId"]):
                return "validationError", "edge does not join its neighbouring nodes", [
                    _ref("edgeId", e["edgeId"])]
            if e["released"] and not (a["released"] and b["released"]):
                return "validationError", "released edge between unreleased nodes", [
                    _ref("edgeId", e["edgeId"])]
        ids = [a["actionId"] for n in nodes for a in n["actions"]]
        if len(set(ids)) != len(ids):
            return "validationError", "actionIds repeat within the order", []
        for e in edges:
            if e["actions"]:
                return "orderError", "this AGV runs no edge actions", [
                    _ref("edgeId", e["edgeId"])]
            for name in ("trajectory", "corridor"):
                if name in e:
                    return "orderError", f"this AGV cannot use edge.{name}", [
                        _ref("edgeId", e["edgeId"]), _ref("parameter", f"edge.{name}")]
        for n in nodes:
            for act in n["actions"]:
                if act["actionType"] not in _NODE_ACTIONS:
                    return "orderError", f"unknown node action {act['actionType']!r}", [
                        _ref("actionId", act["actionId"])]
        if "zoneSetId" in order:
            return "orderError", "this AGV does not use zones", [_ref("parameter", "zoneSetId")]
        return None

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
        problem = self._problems(order)
        if problem is not None:
            return self._reject(problem[0], problem[1], order, now, problem[2])
        nodes = order["nodes"]
        if order["orderId"] != self.order_id:  # (2) a new order
            if self.busy:  # (3)
                return self._reject("orderError", "vehicle is busy with another order", order,
                                    now)
            if not self._reachable(nodes[0]):  # (4)
                return self._reject("noRouteError", "start node is not where the vehicle is",
                                    order, now, [_ref("nodeId", nodes[0]["nodeId"])])
            self.actions = {k: a for k, a in self.actions.items()
                            if a.instant and a.status not in _TERMINAL}
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
                                    "point", order, now, [_ref("nodeId", first["nodeId"])])
            self.nodes = [n for n in self.nodes if n.released]
            self.edges = [e for e in self.edges if e.released]
        elif (first["nodeId"], first["sequenceId"]) != (self.last_node_id,
                                                       self.last_node_seq):  # (8)
            return self._reject("orderUpdateError", "update does not continue from the last "
                                "node", order, now, [_ref("nodeId", first["nodeId"])])
        self._accept(order, append_from=1)
        return self._publish_if_changed(now, force=True)

    def _accept(self, order: dict[str, Any], append_from: int) -> None:
        """(9): take the order and populate/append node, edge and action states."""
        self.order_id, self.order_update_id = order["orderId"], order["orderUpdateId"]
        self.errors = [e for e in self.errors if e["errorType"] not in _ORDER_WARNINGS]
        for n in order["nodes"][append_from:]:
            pos = n.get("nodePosition") or {}
            node = _Node(n["nodeId"], n["sequenceId"], n["released"], pos.get("x"),
                         pos.get("y"), pos.get("mapId"), pos.get("allowedDeviationXY", 0.0))
            for act in n["actions"]:
                params = {p["key"]: p["value"] for p in act.get("actionParameters", [])}
                self.actions[act["actionId"]] = _Action(act["actionId"], act["actionType"],
                                                        act["blockingType"], params)
                node.action_ids.append(act["actionId"])
            self.nodes.append(node)
        self.edges.extend(_Edge(e["edgeId"], e["sequenceId"], e["released"])
                          for e in order["edges"])
        if append_from == 0:
            self._traverse(self.nodes[0])  # the first node is trivially reachable

    def _traverse(self, node: _Node) -> None:
        """§6.10.2: drop the node and the edge into it, trigger its actions."""
        self.nodes.remove(node)
        self.edges = [e for e in self.edges if e.seq != node.seq - 1]
        self.last_node_id, self.last_node_seq = node.node_id, node.seq
        if node.x is not None and node.y is not None:
            self.x, self.y = node.x, node.y
        for aid in node.action_ids:
            if self.cancel_id is not None:
                self.actions[aid].status = "FAILED"
            else:
                self.run_queue.append(aid)

    def _drop_order(self) -> None:
        """Cancel or manual mode: no more nodes; unfinished order actions FAILED."""
        self.nodes.clear()
        self.edges.clear()
        for a in self.actions.values():
            if not a.instant and a.status not in _TERMINAL:
                a.status = "FAILED"
        self.run_queue = [k for k in self.run_queue if self.actions[k].instant]
        self.driving = False

    # --- instant actions (§6.9) ------------------------------------------------------

    def receive_instant_actions(self, message: dict[str, Any], now: float) -> list[Out]:
        """Run each instant action; returns state (and factsheet) messages to publish."""
        self._advance(now)
        out: list[Out] = []
        for act in message["actions"]:
            aid, kind = act["actionId"], act["actionType"]
            a = _Action(aid, kind, act["blockingType"], {}, status="FINISHED", instant=True)
            self.actions[aid] = a
            if kind == "cancelOrder":
                has_order = bool(self.nodes) or any(
                    not x.instant and x.status not in _TERMINAL for x in self.actions.values())
                if not has_order or self.cancel_id is not None:  # §6.6.3.2
                    a.status = "FAILED"
                    self.errors.append({"errorType": "noOrderToCancel", "errorLevel": "WARNING",
                                        "errorReferences": [_ref("actionId", aid)]})
                else:
                    self.cancel_id, a.status = aid, "RUNNING"
                    for x in self.actions.values():  # §6.6.3: scheduled/running actions FAIL
                        if not x.instant and x.status not in _TERMINAL:
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
                                    "errorReferences": [_ref("actionId", aid)]})
        return [self.state(now), *out]  # action states changed: always report

    def _finish_cancel_if_stopped(self) -> None:
        if self.cancel_id is None or self.driving:
            return  # still on an edge: stop at the next node first (Figure 9)
        self._drop_order()
        self.actions[self.cancel_id].status = "FINISHED"

    # --- time ------------------------------------------------------------------------

    def step(self, now: float) -> list[Out]:
        """Advance to ``now``; returns a state message if anything relevant changed."""
        self._advance(now)
        return self._publish_if_changed(now)

    def _halted(self) -> bool:
        return (self.paused or self.e_stop != "NONE" or self.field_violation
                or self.operating_mode not in ("AUTOMATIC", "SEMIAUTOMATIC")
                or any(e["errorLevel"] == "FATAL" for e in self.errors))

    def _advance(self, now: float) -> None:
        dt, self._t = max(0.0, now - self._t), max(now, self._t)
        halted = self._halted()
        for a in self.actions.values():
            if a.status in ("INITIALIZING", "RUNNING") and halted:
                a.status, a.resume = "PAUSED", a.status
        if halted:
            self.driving = False
            return
        self._run_actions(dt)
        self._drive(dt)
        self._finish_cancel_if_stopped()

    def _run_actions(self, dt: float) -> None:
        """Node actions run one after another (a simplification §6.12 allows)."""
        while self.run_queue:
            a = self.actions[self.run_queue[0]]
            if a.status == "WAITING":
                a.status, a.left = "INITIALIZING", self.action_s * 0.2
            elif a.status == "PAUSED":
                a.status = a.resume
            if a.status in _TERMINAL:  # failed by a cancel while queued
                self.run_queue.pop(0)
                continue
            used = min(dt, a.left)
            a.left -= used
            dt -= used
            if a.left > 1e-9:
                return
            if a.status == "INITIALIZING":
                a.status, a.left = "RUNNING", self.action_s * 0.8
                continue
            self._complete(a)
            self.run_queue.pop(0)

    def _complete(self, a: _Action) -> None:
        if a.action_type in self.fail_types:
            self.fail_types.discard(a.action_type)
            a.status = "FAILED"
            self.errors.append({"errorType": f"{a.action_type}Failed", "errorLevel": "WARNING",
                                "errorReferences": [_ref("actionId", a.action_id)]})
            return
        a.status = "FINISHED"
        if a.action_type == "pick":
            keys = ("loadId", "loadType")
            load: dict[str, Any] = {k: str(a.params[k]) for k in keys if k in a.params}
            self.loads = [load]
            a.result = str(a.params.get("loadId", "picked"))
        elif a.action_type == "drop":
            self.loads = []

    def _drive(self, dt: float) -> None:
        blocked = any(self.actions[k].blocking in ("HARD", "SOFT") for k in self.run_queue)
        target = self.nodes[0] if self.nodes and self.nodes[0].released else None
        if blocked or target is None:
            self.driving = False
            return
        if target.x is None or target.y is None:
            self._traverse(target)  # nothing to drive to: a line-guided hop
            return
        dist = math.hypot(target.x - self.x, target.y - self.y)
        step = self.speed * dt
        self.driving = True
        if dist > 1e-9:
            self.theta = math.atan2(target.y - self.y, target.x - self.x)
        if step >= dist:
            self._traverse(target)
            self.driving = bool(self.nodes and self.nodes[0].released) and self.cancel_id is None
            if self.cancel_id is not None:
                self.driving = False
            elif step > dist:
                self._drive(dt - dist / self.speed)
            return
        self.x += (target.x - self.x) * step / dist
        self.y += (target.y - self.y) * step / dist
