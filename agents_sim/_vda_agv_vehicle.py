"""The simulated vehicle under the test AGV's protocol: where it is, what it holds of its
order, and how time moves it.

``AgvVehicle`` drives along released nodes at a set speed, runs node actions one at a time
(INITIALIZING → RUNNING → FINISHED, a fifth of ``action_s`` initialising), stops for a
pause, an e-stop, a field violation, a FATAL error or a mode other than automatic, and
finishes a ``cancelOrder`` at the next node. It knows nothing of messages: ``AgvModel``
(``agents_sim._vda_agv_model``) takes orders and instant actions and reports on top of it.
"""

from __future__ import annotations

import math
from typing import Any

from agents_sim._vda_agv_order import TERMINAL, AgvAction, OrderEdge, OrderNode, error_ref

__all__ = ["AgvVehicle"]


class AgvVehicle:
    """Position, order progress and actions of one AGV; moved only by ``_advance(now)``."""

    def __init__(self, *, node_id: str, x: float, y: float, map_id: str, speed: float,
                 action_s: float, now: float) -> None:
        self.speed: float = speed
        """Metres per second on edges."""
        self.action_s: float = action_s
        """Duration of node actions (a fifth INITIALIZING, the rest RUNNING)."""
        self.x, self.y, self.theta, self.map_id = x, y, 0.0, map_id
        self.last_node_id, self.last_node_seq = node_id, 0
        self.nodes: list[OrderNode] = []
        """Nodes of the order still ahead (released ones first)."""
        self.edges: list[OrderEdge] = []
        self.actions: dict[str, AgvAction] = {}
        """Every action of the current order and every instant action, by id."""
        self.run_queue: list[str] = []
        """Ids of the node actions triggered and not yet done, in order."""
        self.errors: list[dict[str, Any]] = []
        self.loads: list[dict[str, Any]] = []
        self.paused = self.driving = self.field_violation = False
        self.e_stop = "NONE"
        self.operating_mode = "AUTOMATIC"
        self.cancel_id: str | None = None
        """The ``cancelOrder`` in progress: the vehicle stops at the next node."""
        self.fail_types: set[str] = set()
        self._t = now

    @property
    def now(self) -> float:
        """The time the vehicle has been advanced to."""
        return self._t

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

    # --- the order's progress --------------------------------------------------------

    def _traverse(self, node: OrderNode) -> None:
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
            if not a.instant and a.status not in TERMINAL:
                a.status = "FAILED"
        self.run_queue = [k for k in self.run_queue if self.actions[k].instant]
        self.driving = False

    def _finish_cancel_if_stopped(self) -> None:
        """A running ``cancelOrder`` ends once the vehicle stands on a node."""
        if self.cancel_id is None or self.driving:
            return  # still on an edge: stop at the next node first (Figure 9)
        self._drop_order()
        self.actions[self.cancel_id].status = "FINISHED"

    # --- time ------------------------------------------------------------------------

    def _halted(self) -> bool:
        return (self.paused or self.e_stop != "NONE" or self.field_violation
                or self.operating_mode not in ("AUTOMATIC", "SEMIAUTOMATIC")
                or any(e["errorLevel"] == "FATAL" for e in self.errors))

    def next_change_in(self) -> float | None:
        """Seconds from ``now`` until driving or a node action changes something by itself
        (0: at once; ``None``: nothing moves until a message or a knob)."""
        if self._halted():
            return None
        soonest = math.inf
        if self.run_queue:
            a = self.actions[self.run_queue[0]]
            soonest = a.left if a.status in ("INITIALIZING", "RUNNING") else 0.0
        blocked = any(self.actions[k].blocking in ("HARD", "SOFT") for k in self.run_queue)
        target = self.nodes[0] if self.nodes and self.nodes[0].released else None
        if not blocked and target is not None:
            if target.x is None or target.y is None:
                return 0.0
            soonest = min(soonest, math.hypot(target.x - self.x, target.y - self.y) / self.speed)
        return None if math.isinf(soonest) else max(0.0, soonest)

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
            if a.status in TERMINAL:  # failed by a cancel while queued
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

    def _complete(self, a: AgvAction) -> None:
        if a.action_type in self.fail_types:
            self.fail_types.discard(a.action_type)
            a.status = "FAILED"
            self.errors.append({"errorType": f"{a.action_type}Failed", "errorLevel": "WARNING",
                                "errorReferences": [error_ref("actionId", a.action_id)]})
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
