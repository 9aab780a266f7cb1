"""Cancel and pause mean what the AGV did: the master follows every instant action it sends
until the AGV's state answers it (FINISHED, FAILED, an error naming it or its message),
resends one no state shows, and the bridge gives the core the ``CommandAck`` of each
``Cancel``, ``Pause`` and ``Resume`` — done when the AGV stopped or paused, refused when it
would not. Raw states for the master; the real test AGV (``AgvModel``) for the bridge."""

from __future__ import annotations

from typing import Any

from test_vda_master import PICK, T0, M, S, line, messages, online, order_state, outcomes, state
from vda_rig import Rig

from edge_runtime.vda5050 import (
    VdaInstantResult,
    VdaMaster,
    VdaStepCancelled,
    VdaStepDone,
    VdaStepStarted,
)
from topics import Cancel, Pause, Resume, StepFailed

STATE = f"uagv/v2/{M}/{S}/state"


def _pause(m: VdaMaster, now: float = T0) -> dict[str, Any]:
    (msg,) = messages(m.pause(M, S, now, command_id="p1"))
    return msg.message


def _action(status: str, action_id: str, **fields: Any) -> dict[str, Any]:
    return {"actionId": action_id, "actionType": "startPause", "actionStatus": status, **fields}


# --- the master: answers read from states -------------------------------------------------


def test_an_instant_action_finished_is_confirmed_with_its_command_id() -> None:
    """startPause FINISHED in actionStates → VdaInstantResult ok, naming the command."""
    m = VdaMaster()
    online(m)
    aid = _pause(m)["actions"][0]["actionId"]
    out = m.handle(STATE, state(actionStates=[_action("FINISHED", aid)], paused=True), T0 + 1)
    assert VdaInstantResult(M, S, aid, "startPause", "p1", True, "") in outcomes(out)
    assert m.sessions[(M, S)].instants == {}


def test_an_instant_action_failed_is_refused_with_its_result_description() -> None:
    """FAILED → refused, the reason its resultDescription."""
    m = VdaMaster()
    online(m)
    aid = _pause(m)["actions"][0]["actionId"]
    failed = _action("FAILED", aid, resultDescription="brakes hot")
    (r,) = [o for o in outcomes(m.handle(STATE, state(actionStates=[failed]), T0 + 1))
            if isinstance(o, VdaInstantResult)]
    assert (r.ok, r.reason, r.command_id) == (False, "brakes hot", "p1")


def test_a_message_refused_whole_refuses_its_instant_action() -> None:
    """A validationError naming topic instantActions and the message's headerId refuses it;
    one naming another headerId (an older message) does not."""
    m = VdaMaster()
    online(m)
    header = _pause(m)["headerId"]

    def refusal(h: int) -> dict[str, Any]:
        return {"errorType": "validationError", "errorLevel": "WARNING",
                "errorDescription": "no 'instantActions' array",
                "errorReferences": [{"referenceKey": "headerId", "referenceValue": str(h)},
                                    {"referenceKey": "topic",
                                     "referenceValue": "instantActions"}]}

    assert outcomes(m.handle(STATE, state(errors=[refusal(header + 7)]), T0 + 1)) == []
    (r,) = outcomes(m.handle(STATE, state(errors=[refusal(header)]), T0 + 2))
    assert isinstance(r, VdaInstantResult) and not r.ok
    assert r.reason == "validationError: no 'instantActions' array"


def test_an_instant_action_no_state_shows_is_resent_then_given_up() -> None:
    """Unseen for resend_after_s: sent again, same actionId, new headerId (on a state or a
    tick); after instant_sends sends, refused with "no answer"."""
    m = VdaMaster(resend_after_s=5, instant_sends=3)
    online(m)
    first = _pause(m)
    assert messages(m.tick(T0 + 4)) == []
    (again,) = messages(m.handle(STATE, state(), T0 + 5))
    assert again.message["actions"] == first["actions"]
    assert again.message["headerId"] == first["headerId"] + 1
    (third,) = messages(m.tick(T0 + 10))
    assert third.message["headerId"] == first["headerId"] + 2
    (given_up,) = outcomes(m.tick(T0 + 15))
    assert isinstance(given_up, VdaInstantResult) and not given_up.ok
    assert given_up.reason == "no answer from the AGV to 3 sends"
    assert m.tick(T0 + 30) == []


def test_an_instant_action_seen_running_is_not_resent() -> None:
    """Once a state lists it (any status), it is only waited for."""
    m = VdaMaster(resend_after_s=5)
    online(m)
    aid = _pause(m)["actions"][0]["actionId"]
    m.handle(STATE, state(actionStates=[_action("RUNNING", aid)]), T0 + 1)
    assert messages(m.tick(T0 + 30)) == []


def test_an_agv_that_lists_no_instant_actions_confirms_a_pause_by_its_paused_flag() -> None:
    """No actionStates entry: paused true answers startPause, false answers stopPause."""
    m = VdaMaster()
    online(m)
    _pause(m)
    (r,) = [o for o in outcomes(m.handle(STATE, state(paused=True), T0 + 1))
            if isinstance(o, VdaInstantResult)]
    assert r.ok and r.action_type == "startPause"


def _running(m: VdaMaster) -> dict[str, Any]:
    online(m)
    (msg,) = messages(m.assign(M, S, workflow_id="wf1", step_id="s1", now=T0, path=line(4),
                               actions=[PICK]))
    order = msg.message
    out = m.handle(STATE, order_state(order), T0 + 1)
    assert VdaStepStarted in [type(o) for o in outcomes(out)]
    return order


def _cancel(m: VdaMaster, now: float = T0 + 2) -> str:
    (msg,) = messages(m.cancel(M, S, workflow_id="wf1", step_id="s1", now=now,
                               command_id="c1"))
    return str(msg.message["actions"][0]["actionId"])


def test_a_refused_cancel_order_is_reported_and_the_step_goes_on_to_done() -> None:
    """cancelOrder FAILED: refused (with the error naming it), the order tracked on; the AGV
    finishing it makes the step done."""
    m = VdaMaster()
    order = _running(m)
    cid = _cancel(m)
    refused = order_state(order, actionStates=[
        {"actionId": cid, "actionType": "cancelOrder", "actionStatus": "FAILED"}],
        errors=[{"errorType": "instantActionRefused", "errorLevel": "WARNING",
                 "errorReferences": [{"referenceKey": "actionId", "referenceValue": cid}]}])
    (r,) = outcomes(m.handle(STATE, refused, T0 + 3))
    assert r == VdaInstantResult(M, S, cid, "cancelOrder", "c1", False, "instantActionRefused")
    pick = order["nodes"][-1]["actions"][0]["actionId"]
    done = order_state(order, nodeStates=[], edgeStates=[], lastNodeId="n3",
                       lastNodeSequenceId=6,
                       actionStates=[{"actionId": pick, "actionStatus": "FINISHED"}])
    assert VdaStepDone in [type(o) for o in outcomes(m.handle(STATE, done, T0 + 9))]


def test_a_cancel_refused_because_the_order_just_finished_is_only_done() -> None:
    """The AGV finished the order before the cancelOrder came (FAILED, noOrderToCancel):
    the step is done, and no refusal is reported beside it."""
    m = VdaMaster()
    order = _running(m)
    cid = _cancel(m)
    pick = order["nodes"][-1]["actions"][0]["actionId"]
    done = order_state(order, nodeStates=[], edgeStates=[], lastNodeId="n3",
                       lastNodeSequenceId=6,
                       actionStates=[{"actionId": pick, "actionStatus": "FINISHED"},
                                     {"actionId": cid, "actionStatus": "FAILED"}])
    out = [type(o) for o in outcomes(m.handle(STATE, done, T0 + 3))]
    assert VdaStepDone in out and VdaInstantResult not in out


def test_a_cancel_before_the_agv_took_the_order_withdraws_it_for_good() -> None:
    """The AGV never showed the order: cancelled at the next state, the order not resent."""
    m = VdaMaster(resend_after_s=5)
    online(m)
    messages(m.assign(M, S, workflow_id="wf1", step_id="s1", now=T0, path=line(4)))
    _cancel(m, now=T0 + 0.5)
    out = m.handle(STATE, state(), T0 + 1)
    assert [type(o) for o in outcomes(out)] == [VdaStepCancelled]
    assert [msg.topic.rsplit("/", 1)[1] for msg in messages(m.handle(STATE, state(), T0 + 9))
            ] == []


def test_a_second_cancel_of_a_step_sends_no_second_cancel_order() -> None:
    """One cancelOrder per running step: a second cancel waits for the first's answer."""
    m = VdaMaster()
    _running(m)
    _cancel(m)
    assert m.cancel(M, S, workflow_id="wf1", step_id="s1", now=T0 + 3, command_id="c2") == []


# --- the bridge and the real test AGV: CommandAck for the core -----------------------------


def _driving(rig: Rig) -> None:
    rig.assign()
    rig.run_until(lambda r: "StepStarted" in r.kinds())
    rig.run(3)
    assert rig.agv.driving


def test_pause_and_resume_are_acknowledged_when_the_agv_did_them() -> None:
    """Pause → startPause FINISHED → CommandAck done; Resume likewise; the AGV really did."""
    rig = Rig()
    _driving(rig)
    rig.command(Pause(command_id="p1", workflow_id="w1", step_id="s1"))
    assert rig.acks() == [("p1", "done", "")] and rig.agv.paused
    rig.command(Resume(command_id="r1", workflow_id="w1", step_id="s1"))
    assert rig.acks()[-1] == ("r1", "done", "") and not rig.agv.paused


def test_a_pause_with_nothing_to_pause_is_sent_and_confirmed() -> None:
    """An idle AGV still gets startPause, and its answer is the acknowledgement."""
    rig = Rig()
    rig.command(Pause(command_id="p1"))
    assert [m["actions"][0]["actionType"] for m in rig.instants("startPause")] == ["startPause"]
    assert rig.acks() == [("p1", "done", "")]


def test_a_pause_the_agv_refuses_is_a_refused_acknowledgement() -> None:
    """startPause FAILED (the AGV refuses it) → CommandAck refused, with its reason."""
    rig = Rig()
    rig.agv.refuse_instant("startPause")
    _driving(rig)
    rig.command(Pause(command_id="p1", workflow_id="w1", step_id="s1"))
    assert rig.acks() == [("p1", "refused", "startPause refused")]
    assert not rig.agv.paused


def test_a_pause_under_a_key_the_agv_does_not_read_is_refused() -> None:
    """A 2.1 AGV reading only `instantActions` refuses the message (validationError naming
    its headerId): refused."""
    rig = Rig(instant_key="instantActions")
    rig.command(Pause(command_id="p1"))
    ((command_id, outcome, reason),) = rig.acks()
    assert (command_id, outcome) == ("p1", "refused")
    assert reason.startswith("validationError: instantActions has no 'instantActions' array")


def test_a_lost_pause_is_resent_and_then_acknowledged() -> None:
    """startPause lost on the way (QoS 0): resent after resend_after_s with the same actionId
    and a new headerId; the AGV pauses and the pause is acknowledged."""
    rig = Rig()
    _driving(rig)
    rig.deliver = False
    rig.command(Pause(command_id="p1", workflow_id="w1", step_id="s1"))
    rig.deliver = True
    rig.run(3)
    assert rig.acks() == [] and not rig.agv.paused
    rig.run_until(lambda r: bool(r.acks()), 5)
    first, again = rig.instants("startPause")
    assert first["actions"] == again["actions"] and again["headerId"] > first["headerId"]
    assert rig.acks() == [("p1", "done", "")] and rig.agv.paused


def test_a_cancel_is_acknowledged_only_once_the_agv_stopped() -> None:
    """cancelOrder RUNNING while the AGV drives to the next node; CommandAck done when it
    stands there, its order dropped; the step is not done."""
    rig = Rig()
    _driving(rig)
    rig.command(Cancel(command_id="c1", workflow_id="w1", step_id="s1"))
    assert rig.acks() == [] and rig.agv.driving
    rig.run_until(lambda r: bool(r.acks()), 10)
    assert rig.acks() == [("c1", "done", "")]
    assert not rig.agv.driving and rig.agv.nodes == [] and rig.agv.last_node_id != "pack"
    assert rig.done() == []


def test_a_cancel_the_agv_refuses_is_refused_and_the_step_finishes() -> None:
    """cancelOrder refused: CommandAck refused; the AGV drives on and the step is done."""
    rig = Rig(speed=5.0)
    rig.agv.refuse_instant("cancelOrder")
    _driving(rig)
    rig.command(Cancel(command_id="c1", workflow_id="w1", step_id="s1"))
    assert rig.acks() == [("c1", "refused", "cancelOrder refused")]
    rig.run_until(lambda r: bool(r.done()), 30)
    assert rig.done()[0].attempt == 1 and rig.acks() == [("c1", "refused", "cancelOrder refused")]


def test_an_order_finished_while_its_cancel_was_lost_is_done_not_cancelled() -> None:
    """Every copy of cancelOrder lost: the AGV finishes the order, the step is done (the core
    flags it), no acknowledgement says cancelled, and the cancel stops being resent."""
    rig = Rig(speed=2.0)
    _driving(rig)
    rig.deliver = False
    rig.command(Cancel(command_id="c1", workflow_id="w1", step_id="s1"))
    rig.run_until(lambda r: bool(r.done()), 30)
    sent = len(rig.instants("cancelOrder"))
    assert sent >= 2 and rig.acks() == []
    rig.run(20)
    assert len(rig.instants("cancelOrder")) == sent and rig.acks() == []


def test_a_queued_step_withdrawn_is_acknowledged_at_once() -> None:
    """A step waiting behind another is dropped: CommandAck done, nothing sent to the AGV."""
    rig = Rig()
    _driving(rig)
    rig.assign("s2", "p1", command_id="a2")
    sent = len(rig.sent)
    rig.command(Cancel(command_id="c2", workflow_id="w1", step_id="s2"))
    assert rig.acks() == [("c2", "done", "")] and len(rig.sent) == sent


def test_a_cancel_of_a_step_the_agv_no_longer_holds_is_acknowledged() -> None:
    """Nothing of the step is queued or running (it ended): it is stopped, done at once."""
    rig = Rig()
    rig.command(Cancel(command_id="c9", workflow_id="w1", step_id="gone"))
    assert rig.acks() == [("c9", "done", "")] and rig.sent == []


def test_cancels_repeated_by_the_core_are_all_acknowledged_by_one_cancel_order() -> None:
    """Two Cancel commands for one running step: one cancelOrder, both acknowledged."""
    rig = Rig()
    _driving(rig)
    rig.deliver = False  # the first copy is lost: the AGV stops on the resend
    rig.command(Cancel(command_id="c1", workflow_id="w1", step_id="s1"))
    rig.deliver = True
    rig.command(Cancel(command_id="c2", workflow_id="w1", step_id="s1"))
    rig.run_until(lambda r: bool(r.acks()), 20)
    assert sorted(rig.acks()) == [("c1", "done", ""), ("c2", "done", "")]
    assert len({m["actions"][0]["actionId"] for m in rig.instants("cancelOrder")}) == 1
    assert not any(isinstance(i, StepFailed) for i in rig.inputs)
