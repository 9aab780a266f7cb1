"""Instant actions the master sent (``SentInstant``), and what the AGV answered to them.

An instant action is answered when a ``state`` lists its ``actionId`` FINISHED (done) or
FAILED (refused: its ``resultDescription``, else the error naming it, else "FAILED"), or
carries an error whose ``errorReferences`` name its ``actionId``, or name ``topic``
``instantActions`` with a ``headerId`` it went out under (the message was refused whole, a
``validationError``). An AGV that does not list instant actions in its states answers a
``startPause``/``stopPause`` by its ``paused`` flag. One a state lists, in any status, is
*seen*; one neither seen nor answered within ``resend_after_s`` is sent again (same
``actionId``, new ``headerId``: QoS 0 may lose it), up to ``max_sends`` times, and then
counts as refused ("no answer").

A ``cancelOrder`` withdrawing a running step is answered for that step by ``_track`` (the
step is cancelled, or done, or goes on if it was refused). One whose order is no longer
ours (its step ended) is only resent while the AGV still runs that order, and forgotten as
soon as it does not: a late copy would cancel the AGV's next order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edge_runtime.vda5050._outcomes import VdaInstantResult
from edge_runtime.vda5050._session import AgvSession, SentInstant

__all__ = ["answer", "due_instants", "instant_result", "observe_instants"]

_IN_PROGRESS = frozenset({"WAITING", "INITIALIZING", "RUNNING", "PAUSED"})
_PAUSED_AFTER = {"startPause": True, "stopPause": False}
"""What ``paused`` shows once a pause action took effect."""


def answer(sent: SentInstant, action_id: str, state: dict[str, Any]) -> tuple[bool, str] | None:
    """``(ok, reason)`` if ``state`` answers the instant action, else None; marks it seen."""
    entry = next((x for x in state.get("actionStates", [])
                  if isinstance(x, dict) and x.get("actionId") == action_id), None)
    status = entry.get("actionStatus") if entry is not None else None
    if entry is not None:
        sent.seen = True
    if status == "FINISHED":
        return True, ""
    refused = _refusal(state.get("errors", []), action_id, sent.header_ids)
    if status == "FAILED":
        assert entry is not None
        return False, str(entry.get("resultDescription") or refused or "FAILED")[:512]
    if status is None and refused is not None:
        return False, refused[:512]
    paused, goal = state.get("paused"), _PAUSED_AFTER.get(sent.action_type)
    if status is None and goal is not None and paused is goal:
        return True, ""
    return None


def _refusal(errors: Iterable[Any], action_id: str, header_ids: list[int]) -> str | None:
    """The text of an error that names the action, or its message, if any."""
    headers = {str(h) for h in header_ids}
    for err in errors:
        if not isinstance(err, dict):
            continue
        refs = {r.get("referenceKey"): r.get("referenceValue")
                for r in err.get("errorReferences", []) if isinstance(r, dict)}
        if refs.get("actionId") == action_id or (
                refs.get("topic") == "instantActions" and str(refs.get("headerId")) in headers):
            text = err.get("errorDescription")
            return f"{err.get('errorType')}: {text}" if text else str(err.get("errorType"))
    return None


def instant_result(s: AgvSession, action_id: str, sent: SentInstant, ok: bool,
                   reason: str) -> VdaInstantResult:
    """The outcome reporting the answer to one instant action."""
    return VdaInstantResult(s.manufacturer, s.serial_number, action_id, sent.action_type,
                            sent.command_id, ok, reason)


def observe_instants(s: AgvSession, state: dict[str, Any]) -> list[VdaInstantResult]:
    """Answers in ``state`` to the instant actions ``s`` waits for (answered ones are
    forgotten); the ``cancelOrder`` of the running step is left to ``_track``."""
    out: list[VdaInstantResult] = []
    mine = s.active.cancel_action_id if s.active is not None else None
    for action_id, sent in list(s.instants.items()):
        got = answer(sent, action_id, state)
        if got is None or action_id == mine:
            continue
        del s.instants[action_id]
        out.append(instant_result(s, action_id, sent, *got))
    return out


def _runs(state: dict[str, Any] | None, order_id: str) -> bool:
    """Whether the AGV's ``state`` shows it still running order ``order_id``."""
    if not state or state.get("orderId") != order_id:
        return False
    return bool(state.get("nodeStates") or state.get("edgeStates") or any(
        x.get("actionStatus") in _IN_PROGRESS for x in state.get("actionStates", [])))


def due_instants(s: AgvSession, now: float, resend_after_s: float,
                 max_sends: int) -> tuple[list[str], list[VdaInstantResult]]:
    """Instant actions of ``s`` to send again now, and those given up (refused: no answer).

    Nothing is resent to an AGV that is not online. A ``cancelOrder`` whose step ended is
    dropped once the AGV does not run its order any more.
    """
    resend: list[str] = []
    out: list[VdaInstantResult] = []
    if s.lost or s.connection != "ONLINE":
        return resend, out
    a = s.active
    for action_id, sent in list(s.instants.items()):
        mine = a is not None and a.cancel_action_id == action_id
        if sent.order_id and not mine and not _runs(s.state, sent.order_id):
            del s.instants[action_id]
            continue
        if sent.seen or now - sent.sent_at < resend_after_s:
            continue
        if sent.sends < max_sends:
            resend.append(action_id)
            continue
        del s.instants[action_id]
        if mine:
            assert a is not None
            a.cancel_action_id = None  # the order goes on being tracked
        out.append(instant_result(s, action_id, sent, False,
                                  f"no answer from the AGV to {sent.sends} sends"))
    return resend, out
