"""The tracking of VDA 5050 AGV reports into step-level outcomes.

The functions here update an ``AgvSession`` (``edge_runtime.vda5050._session``) from what the
AGV reports — ``connectionState``, and in ``state``: ``actionStates``, ``lastNodeId``,
``errors``, ``operatingMode``, ``safetyState``, ``paused`` — and turn it into outcomes
(``VdaStep*``, ``VdaSafety``, ``VdaPaused``, ``VdaAgvLost`` …). They send nothing: where the
master must answer (resend an order, ``cancelOrder``, release more of the base) they return a
``Request`` in place, and the master (``edge_runtime.vda5050._master``) carries it out there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from edge_runtime.vda5050._instants import answer, instant_result
from edge_runtime.vda5050._order import OrderPlan
from edge_runtime.vda5050._outcomes import (
    VdaAgvLost,
    VdaAgvOnline,
    VdaInstantResult,
    VdaOutcome,
    VdaPaused,
    VdaSafety,
    VdaStepCancelled,
    VdaStepDone,
    VdaStepFailed,
    VdaStepProgress,
    VdaStepStarted,
)
from edge_runtime.vda5050._session import AgvSession, RobotStep, RunningOrder
from topics import ProtocolError

__all__ = [
    "Request",
    "Tracked",
    "lose",
    "observe_state",
    "on_connection",
    "rejected",
    "silent",
    "step_failed",
    "track",
]

Request = Literal["resend", "cancel_order", "release"]
"""What tracking asks the master to send: the running order again, ``cancelOrder``, or the
next part of the base (``release``)."""

Tracked = list[VdaOutcome | Request]
"""Outcomes and requests, in the order they arose."""

_TERMINAL = frozenset({"FINISHED", "FAILED"})
_IN_PROGRESS = frozenset({"WAITING", "INITIALIZING", "RUNNING", "PAUSED"})
_REJECTIONS: Mapping[str, bool] = {
    # errorType -> retryable. A malformed or unperformable order fails the same way again.
    "validationError": False,
    "orderError": False,
    "orderUpdateError": True,
    "noRouteError": True,
}
_CONTROLLED_MODES = frozenset({"AUTOMATIC", "SEMIAUTOMATIC"})


def step_failed(s: AgvSession, job: RobotStep, order_id: str, error_type: str, text: str,
                retryable: bool) -> VdaStepFailed:
    """The ``VdaStepFailed`` of ``job`` on AGV ``s``."""
    return VdaStepFailed(s.manufacturer, s.serial_number, job.workflow_id, job.step_id,
                         job.attempt, order_id, error_type, text, retryable)


# --- connection and liveness ---------------------------------------------------------


def on_connection(s: AgvSession, message: dict[str, Any], now: float) -> list[VdaOutcome]:
    """A ``connection`` message: online again, or lost (``ProtocolError`` if unknown)."""
    conn = message.get("connectionState")
    if conn not in ("ONLINE", "OFFLINE", "CONNECTIONBROKEN"):
        raise ProtocolError("schema", f"connectionState {conn!r} is not known")
    s.connection = conn
    if conn == "ONLINE":
        s.lost = False
        s.state_at = now  # liveness counts from the announcement
        return [VdaAgvOnline(s.manufacturer, s.serial_number, s.answer_version)]
    return lose(s, conn)


def lose(
    s: AgvSession, reason: Literal["OFFLINE", "CONNECTIONBROKEN", "STATE_TIMEOUT"]
) -> list[VdaOutcome]:
    """docs/design.md §6: a lost agent fails its steps as retryable, to be re-allocated."""
    if s.lost:
        return []
    s.lost = True
    s.instants.clear()  # unanswerable now; the core handles a lost agent's commands itself
    out: list[VdaOutcome] = [VdaAgvLost(s.manufacturer, s.serial_number, reason)]
    jobs: list[tuple[RobotStep, str]] = []
    if s.active is not None:
        jobs.append((s.active.job, s.active.plan.order_id))
        s.active = None
    jobs.extend((job, "") for job in s.queue)
    s.queue.clear()
    for job, order_id in jobs:
        out.append(step_failed(s, job, order_id, "agv_lost",
                               f"AGV {s.serial_number} is {reason}", True))
    return out


def silent(sessions: Iterable[AgvSession], now: float, liveness_s: float) -> list[VdaOutcome]:
    """AGVs with no state for ``liveness_s`` are lost."""
    out: list[VdaOutcome] = []
    for s in sessions:
        if not s.lost and s.state_at is not None and now - s.state_at > liveness_s:
            out.extend(lose(s, "STATE_TIMEOUT"))
    return out


# --- state: the AGV as a whole -------------------------------------------------------


def observe_state(s: AgvSession, state: dict[str, Any], now: float) -> list[VdaOutcome]:
    """Record a ``state`` message; report safety and ``paused`` changes (not the order)."""
    s.state, s.state_at = state, now
    if s.lost and s.connection == "ONLINE":
        s.lost = False
    out = _safety(s, state)
    paused = bool(state.get("paused", False))
    if paused != s.paused:
        s.paused = paused
        out.append(VdaPaused(s.manufacturer, s.serial_number, paused))
    return out


def _safety(s: AgvSession, state: dict[str, Any]) -> list[VdaOutcome]:
    safety = state.get("safetyState", {})
    now_active: dict[str, str] = {}
    if safety.get("eStop", "NONE") != "NONE":
        now_active["e_stop"] = str(safety["eStop"])
    if safety.get("fieldViolation"):
        now_active["field_violation"] = "protective field violated"
    mode = state.get("operatingMode", "AUTOMATIC")
    if mode not in _CONTROLLED_MODES:
        now_active["operating_mode"] = str(mode)
    out: list[VdaOutcome] = []
    for cond in ("e_stop", "field_violation", "operating_mode"):
        before, after = s.safety.get(cond), now_active.get(cond)
        if before != after:
            out.append(VdaSafety(s.manufacturer, s.serial_number, cond,  # type: ignore[arg-type]
                                 after is not None, after or before or ""))
    s.safety = now_active
    return out


# --- state: the running order --------------------------------------------------------


def track(s: AgvSession, a: RunningOrder, state: dict[str, Any], now: float,
          resend_after_s: float) -> Tracked:
    """Follow the running order ``a`` through one ``state``; clears ``s.active`` when the
    step ends. An order not acknowledged ``resend_after_s`` after sending is asked again."""
    plan, job = a.plan, a.job
    ours = state.get("orderId") == plan.order_id
    rejected = _rejection(a, state)
    if rejected is not None:
        error_type, text = rejected
        s.active = None
        out: Tracked = [step_failed(s, job, plan.order_id, error_type, text,
                                    _REJECTIONS[error_type])]
        if ours and state.get("nodeStates"):  # a refused update: stop the old base
            out.append("cancel_order")
        return out
    if not ours:
        if a.started:
            s.active = None
            return [step_failed(s, job, plan.order_id, "order_replaced",
                                f"AGV now runs order {state.get('orderId')!r}", True)]
        if a.cancel_action_id is not None:
            # Withdrawn before the AGV took it: stop resending it. Should it arrive late,
            # the cancelOrder sent after it stops it (resent while the AGV runs it).
            s.active = None
            return [_cancelled(s, a)]
        return _resend_if_due(a, now, resend_after_s)
    a.acked_update = max(a.acked_update, int(state.get("orderUpdateId", 0)))
    out = _resend_if_due(a, now, resend_after_s) if a.acked_update < plan.update_id else []
    if not a.started:
        a.started = True
        out.append(VdaStepStarted(s.manufacturer, s.serial_number, job.workflow_id,
                                  job.step_id, job.attempt, plan.order_id))
    statuses = {x["actionId"]: x["actionStatus"] for x in state.get("actionStates", [])}
    refusal: VdaInstantResult | None = None
    if a.cancel_action_id is not None:
        ended, refusal = _cancel(s, a, state, statuses)
        if ended is not None:
            return [*out, *ended]
    rest = _progress(s, a, state, statuses)
    if refusal is not None and not any(isinstance(o, VdaStepDone) for o in rest):
        out.append(refusal)  # the cancel was refused; not if the order ended done anyway
    return [*out, *rest]


def _cancelled(s: AgvSession, a: RunningOrder) -> VdaStepCancelled:
    job = a.job
    return VdaStepCancelled(s.manufacturer, s.serial_number, job.workflow_id, job.step_id,
                            job.attempt, a.plan.order_id)


def _cancel(s: AgvSession, a: RunningOrder, state: dict[str, Any], statuses: dict[str, str],
            ) -> tuple[Tracked | None, VdaInstantResult | None]:
    """A ``cancelOrder`` of ours is out for the running order: what the state says of it.

    The step is withdrawn only when the AGV stopped: the cancelOrder FINISHED, or the order
    ended unfinished. An order that ended with every node traversed and every action
    FINISHED was finished despite the cancel: that is ``VdaStepDone``. A refused cancelOrder
    is reported, and the order goes on being tracked. Returns the step's end (or ``[]``:
    wait), or None to go on tracking, and the refusal to report, if any.
    """
    cancel_id = a.cancel_action_id
    assert cancel_id is not None
    sent = s.instants.get(cancel_id)
    got = answer(sent, cancel_id, state) if sent is not None else None
    if got is not None:
        assert sent is not None
        del s.instants[cancel_id]
        if got[0]:
            s.active = None
            return [_cancelled(s, a)], None
        a.cancel_action_id = None
        return None, instant_result(s, cancel_id, sent, *got)
    plan = a.plan
    over = not state.get("nodeStates") and not state.get("edgeStates") and not any(
        statuses.get(aid) in _IN_PROGRESS for aid in plan.action_ids)
    if not over or statuses.get(cancel_id) in _IN_PROGRESS:
        return [], None
    s.active = None  # the order ended without our cancelOrder (never got or ran it)
    if _finished(plan, state, statuses):
        job = a.job
        return [VdaStepDone(s.manufacturer, s.serial_number, job.workflow_id, job.step_id,
                            job.attempt, plan.order_id, _outputs(plan, state))], None
    return [_cancelled(s, a)], None


def _finished(plan: OrderPlan, state: dict[str, Any], statuses: dict[str, str]) -> bool:
    """Every node of the order traversed and every action of it FINISHED."""
    return (plan.fully_released and state.get("lastNodeId") == plan.path[-1].node_id
            and all(statuses.get(aid) == "FINISHED" for aid in plan.action_ids))


def _progress(s: AgvSession, a: RunningOrder, state: dict[str, Any],
              statuses: dict[str, str]) -> Tracked:
    """The running order's failures, progress, base releases and end."""
    plan, job = a.plan, a.job
    out: Tracked = []
    failed = [aid for aid in plan.action_ids if statuses.get(aid) == "FAILED"]
    fatal = [e for e in state.get("errors", []) if e.get("errorLevel") == "FATAL"]
    if failed or fatal:
        s.active = None
        if failed:
            kind, text = "action_failed", f"action {failed[0]} FAILED"
        else:
            kind = "agv_fatal_error"
            text = f"FATAL {fatal[0].get('errorType')}: {fatal[0].get('errorDescription', '')}"
        out.append(step_failed(s, job, plan.order_id, kind, text, True))
        if state.get("nodeStates"):
            out.append("cancel_order")
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
        out.append("release")
        return out
    in_progress = any(statuses.get(aid) in _IN_PROGRESS for aid in plan.action_ids)
    if not state.get("nodeStates") and not state.get("edgeStates") and not in_progress:
        s.active = None
        if _finished(plan, state, statuses):
            out.append(VdaStepDone(s.manufacturer, s.serial_number, job.workflow_id,
                                   job.step_id, job.attempt, plan.order_id,
                                   _outputs(plan, state)))
        else:
            out.append(step_failed(s, job, plan.order_id, "order_aborted",
                                   "the AGV dropped the order before finishing it", True))
    return out


def rejected(tracked: Tracked) -> bool:
    """Whether the AGV rejected the order or its update (§6.6.4, ``_rejection``): ``track``
    then reports the step failed with the rejection's errorType, which nothing else uses."""
    return any(isinstance(o, VdaStepFailed) and o.error_type in _REJECTIONS for o in tracked)


def _resend_if_due(a: RunningOrder, now: float, resend_after_s: float) -> Tracked:
    if now - a.sent_at < resend_after_s:
        return []
    a.sent_at = now
    return ["resend"]


def _rejection(a: RunningOrder, state: dict[str, Any]) -> tuple[str, str] | None:
    """An order/update rejection error (§6.6.4) that concerns this order, if any."""
    for err in state.get("errors", []):
        etype = err.get("errorType")
        if etype not in _REJECTIONS:
            continue
        refs = {r.get("referenceKey"): r.get("referenceValue")
                for r in err.get("errorReferences", [])}
        if refs.get("topic", "order") != "order":
            continue  # about a message on another topic (a refused instant action)
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
