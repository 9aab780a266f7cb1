"""VDA 5050 AGVs as core agents: the shell's translation between the core and ``VdaMaster``.

The core only knows native agents. An AGV ``uagv/v2/{manufacturer}/{serial}`` is the core
agent ``serial``: its ``connection`` ONLINE/OFFLINE/CONNECTIONBROKEN becomes ``AgentConn``,
each ``state`` becomes ``AgentState`` (battery, last node, e-stop, operating mode), and the
master's step outcomes become ``StepAccepted``/``Started``/``Progress``/``Done``/``Failed``
with event ids derived from the order id (so a redelivered state makes a duplicate the
core drops). The core's ``Assign``/``Cancel``/``Pause``/``Resume`` for such an agent become
``order``/``instantActions`` through the master, and what the AGV did about a ``Cancel``,
``Pause`` or ``Resume`` comes back as the ``CommandAck`` a native agent would send: done
when the AGV stopped (``VdaStepCancelled``) or its ``startPause``/``stopPause`` FINISHED,
refused when it refused the instant action (FAILED, an error naming it, or no answer).

``VdaSafety`` and ``VdaPaused`` are not translated: the same facts reach the core in the
``AgentState`` made of the same state message (``e_stop``, ``mode``, status ``paused``).

Sans-IO like the master: the shell passes ``now`` and publishes what comes back. What the
bridge and the master know is durable: ``changed()`` gives the records to commit with the
batch, ``load()`` takes them back at start (docs/decisions.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from edge_runtime.core import Publish
from edge_runtime.vda5050._master import VdaMaster
from edge_runtime.vda5050._order import actions_for
from edge_runtime.vda5050._outcomes import (
    VdaAgvLost,
    VdaAgvOnline,
    VdaInstantResult,
    VdaMessage,
    VdaOutput,
    VdaStepCancelled,
    VdaStepDone,
    VdaStepFailed,
    VdaStepProgress,
    VdaStepStarted,
)
from edge_runtime.vda5050._persist import RecordError, decode_record, encode_record
from topics import (
    AgentConn,
    AgentState,
    Assign,
    Cancel,
    CommandAck,
    Pause,
    ProtocolError,
    Resume,
    StepAccepted,
    StepDone,
    StepFailed,
    StepProgress,
    StepStarted,
    SyncArrival,
    check_identifier,
)

__all__ = ["BRIDGE_KEY", "BridgeRecord", "VdaBridge", "VdaTranslation"]

NativeInput = AgentConn | AgentState | StepAccepted | StepStarted | StepProgress | StepDone \
    | StepFailed | SyncArrival | CommandAck
BRIDGE_KEY = b"bridge"
"""Record key of what the bridge itself keeps (``BridgeRecord``)."""
_MODES = {"AUTOMATIC": "automatic", "SEMIAUTOMATIC": "automatic", "MANUAL": "manual"}


@dataclass
class VdaTranslation:
    """What one VDA exchange yields: core inputs (in order) and VDA messages to publish."""

    inputs: list[NativeInput] = field(default_factory=list)
    messages: list[VdaMessage] = field(default_factory=list)


@dataclass(slots=True)
class BridgeRecord:
    """What the bridge keeps beside the master's sessions (one durable record)."""

    sync_points: dict[tuple[str, str, int], str] = field(default_factory=dict)
    """(workflow, step, attempt) -> the barrier the AGV arrives at once the step is done: an
    AGV cannot speak Fleetflow's sync protocol, so the bridge arrives for it."""
    cancels: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """(workflow, step) -> the core's ``Cancel`` command ids waiting for the AGV to stop."""


def _event_id(order_id: str, what: str) -> str:
    digest = hashlib.blake2b(f"{order_id}|{what}".encode(), digest_size=12).hexdigest()
    return f"vda-{digest}"


class VdaBridge:
    """The facility's VDA master and the AGV ↔ agent id mapping."""

    def __init__(self, facility: str, master: VdaMaster,
                 capabilities: tuple[str, ...] = ("transport",)) -> None:
        self.facility = facility
        """The facility whose agent topics the core uses."""
        self.master = master
        """The VDA 5050 master control (routes, orders, tracking)."""
        self.capabilities = capabilities
        """Capabilities every AGV is announced to the core with."""
        self._agvs: dict[str, tuple[str, str]] = {}
        self._kept = BridgeRecord()
        self._dirty = False
        self._cmd_prefix = f"fleetflow/v1/{facility}/agent/"

    # --- durable records -------------------------------------------------------------

    @property
    def urgent(self) -> bool:
        """Whether a record changed materially: the batch must commit even without events."""
        return self._dirty or self.master.urgent

    def changed(self) -> dict[bytes, bytes | None]:
        """The master's and the bridge's records changed since the last call, by key: the
        shell commits them in the batch's WriteBatch."""
        out = self.master.changed()
        if self._dirty:
            out[BRIDGE_KEY] = encode_record(self._kept, BridgeRecord)
            self._dirty = False
        return out

    def load(self, records: Iterable[tuple[bytes, bytes]], now: float) -> list[str]:
        """Take the records a restarted edge found in its store (liveness counts from
        ``now``); returns what was skipped, and why."""
        records = list(records)
        problems = self.master.load(records, now)
        for key, raw in records:
            if key == BRIDGE_KEY:
                try:
                    self._kept = decode_record(raw, BridgeRecord)
                except RecordError as exc:
                    problems.append(f"VDA 5050 record 'bridge' skipped: {exc}")
        self._agvs = {serial: (manufacturer, serial)
                      for manufacturer, serial in self.master.sessions}
        self._dirty = False
        return problems

    def subscriptions(self) -> list[tuple[str, int]]:
        """Filters for the shell: any major version, so a wrong one can be refused."""
        base = f"{self.master.interface}/+/+/+"
        return [(f"{base}/state", 0), (f"{base}/connection", 1), (f"{base}/factsheet", 0)]

    def inbound(self, manufacturer: str, serial: str, kind: str, message: dict[str, Any],
                now: float) -> VdaTranslation:
        """Translate one validated AGV message; ``ProtocolError`` if the master refuses it."""
        check_identifier(serial, "serial number")
        known = self._agvs.get(serial)
        if known is not None and known != (manufacturer, serial):
            raise ProtocolError("identity_mismatch", f"agent id {serial!r} is already the AGV "
                                                     f"of manufacturer {known[0]!r}")
        out = self.master.handle_vda(manufacturer, serial, kind, message, now)
        self._agvs[serial] = (manufacturer, serial)
        result = self._translate(out, now)
        if kind == "state" and not self.master.session(manufacturer, serial).lost:
            # An AGV the master holds lost (its connection broken or OFFLINE, no ONLINE
            # since) is not back because a state arrives: the core would take it as a
            # rejoin and assign it steps the master can only fail (agv_lost).
            result.inputs.append(self._state(serial, message, now))
        return result

    def tick(self, now: float) -> VdaTranslation:
        """The master's timer input (AGVs silent past their window are lost)."""
        return self._translate(self.master.tick(now), now)

    def handles(self, effect: Publish) -> bool:
        """Whether a core Publish is a command for an AGV (the bridge must translate it)."""
        topic = effect.topic
        if not topic.startswith(self._cmd_prefix) or not topic.endswith("/cmd"):
            return False
        return topic[len(self._cmd_prefix):-4] in self._agvs

    def command(self, effect: Publish, now: float) -> VdaTranslation:
        """Translate a core command for an AGV into VDA messages (and any immediate outcome)."""
        manufacturer, serial = self._agvs[effect.topic[len(self._cmd_prefix):-4]]
        msg = effect.message
        m = self.master
        out: VdaOutput
        if isinstance(msg, Assign):
            if msg.sync_point is not None:
                key = (msg.workflow_id, msg.step_id, msg.attempt)
                self._kept.sync_points[key] = msg.sync_point
                self._dirty = True
            try:
                actions = actions_for(msg.action, msg.params)
                goal = msg.location or self._here(manufacturer, serial)
                if goal is None:  # a step without location runs where the AGV stands
                    raise ValueError(f"{serial} reports no lastNodeId and the step has no "
                                     "location: there is nowhere to send it")
                out = m.assign(manufacturer, serial, workflow_id=msg.workflow_id,
                               step_id=msg.step_id, now=now, attempt=msg.attempt,
                               goal=goal, actions=actions)
            except ValueError as exc:
                fail = StepFailed(event_id=_event_id(msg.command_id, "refused"), agent_id=serial,
                                  ts=now, workflow_id=msg.workflow_id, step_id=msg.step_id,
                                  attempt=msg.attempt, error_type="no_route",
                                  message=str(exc)[:1024], retryable=False)
                return VdaTranslation(inputs=[fail])
        elif isinstance(msg, Cancel):
            if not m.holds(manufacturer, serial, msg.workflow_id, msg.step_id):
                # Nothing of it is queued or runs on the AGV (it ended): it is stopped.
                return VdaTranslation(inputs=[self._ack(serial, msg.command_id, now, True)])
            waiting = self._kept.cancels.setdefault((msg.workflow_id, msg.step_id), [])
            if msg.command_id not in waiting:
                waiting.append(msg.command_id)
                self._dirty = True
            out = m.cancel(manufacturer, serial, workflow_id=msg.workflow_id,
                           step_id=msg.step_id, now=now, command_id=msg.command_id)
        elif isinstance(msg, Pause):
            out = m.pause(manufacturer, serial, now, command_id=msg.command_id)
        elif isinstance(msg, Resume):
            out = m.resume(manufacturer, serial, now, command_id=msg.command_id)
        else:
            out = []  # cfp/award/sync_release: the edge bids and decides for AGVs itself
        return self._translate(out, now)

    def _here(self, manufacturer: str, serial: str) -> str | None:
        state = self.master.session(manufacturer, serial).state or {}
        return str(state.get("lastNodeId") or "") or None

    def _state(self, serial: str, state: dict[str, Any], now: float) -> AgentState:
        errors = state.get("errors", [])
        busy = bool(state.get("driving")) or bool(state.get("nodeStates")) or any(
            a.get("actionStatus") not in ("FINISHED", "FAILED")
            for a in state.get("actionStates", []))
        status: Literal["idle", "busy", "error", "paused"] = "busy" if busy else "idle"
        if state.get("paused"):
            status = "paused"
        if any(e.get("errorLevel") == "FATAL" for e in errors):
            status = "error"
        battery = state.get("batteryState", {}).get("batteryCharge")
        node = str(state.get("lastNodeId") or "")
        pos = state.get("agvPosition") or {}
        x, y = pos.get("x"), pos.get("y")
        try:
            node_id: str | None = check_identifier(node) if node else None
        except ProtocolError:
            node_id = None
        return AgentState(
            agent_id=serial, ts=now, status=status, node=node_id,
            x=x if isinstance(x, int | float) and abs(x) <= 1e6 else None,
            y=y if isinstance(y, int | float) and abs(y) <= 1e6 else None,
            battery=None if battery is None else max(0.0, min(100.0, float(battery))),
            mode=_MODES.get(str(state.get("operatingMode")), "service"),  # type: ignore[arg-type]
            e_stop=state.get("safetyState", {}).get("eStop", "NONE") != "NONE",
        )

    def _translate(self, out: VdaOutput, now: float) -> VdaTranslation:
        result = VdaTranslation()
        for item in out:
            if isinstance(item, VdaMessage):
                result.messages.append(item)
            elif isinstance(item, VdaAgvOnline):
                result.inputs.append(AgentConn(
                    agent_id=item.serial_number, online=True, kind="robot",
                    capabilities=list(self.capabilities),
                    liveness_s=min(3600.0, self.master.liveness_s), ts=now,
                    bids=False))  # an AGV cannot bid: the core bids for it (contract net)
            elif isinstance(item, VdaAgvLost):
                result.inputs.append(AgentConn(agent_id=item.serial_number, online=False,
                                               ts=now))
            elif isinstance(item, VdaStepStarted | VdaStepProgress | VdaStepDone | VdaStepFailed):
                result.inputs.extend(self._step(item, now))
            elif isinstance(item, VdaStepCancelled):  # the AGV stopped: the cancel is done
                for command_id in self._cancels_of(item.workflow_id, item.step_id):
                    result.inputs.append(self._ack(item.serial_number, command_id, now, True))
            elif isinstance(item, VdaInstantResult):
                result.inputs.extend(self._instant(item, now))
        return result

    def _cancels_of(self, workflow_id: str, step_id: str) -> list[str]:
        """The Cancel command ids waiting for the step, forgotten now."""
        waiting = self._kept.cancels.pop((workflow_id, step_id), [])
        self._dirty = self._dirty or bool(waiting)
        return waiting

    def _instant(self, r: VdaInstantResult, now: float) -> list[NativeInput]:
        """A Pause's or Resume's answer; a refused cancelOrder (a finished one is answered
        by the step's end)."""
        if r.command_id is None:
            return []
        if r.action_type != "cancelOrder":
            return [self._ack(r.serial_number, r.command_id, now, r.ok, r.reason)]
        if r.ok:
            return []
        step = next((k for k, ids in self._kept.cancels.items() if r.command_id in ids), None)
        ids = self._cancels_of(*step) if step is not None else [r.command_id]
        return [self._ack(r.serial_number, c, now, False, r.reason) for c in ids]

    @staticmethod
    def _ack(serial: str, command_id: str, now: float, ok: bool, reason: str = "",
             ) -> CommandAck:
        outcome: Literal["done", "refused"] = "done" if ok else "refused"
        return CommandAck(event_id=_event_id(command_id, f"ack-{outcome}"), agent_id=serial,
                          ts=now, command_id=command_id, outcome=outcome,
                          reason=(reason or ("" if ok else "refused"))[:1024])

    def _step(self, o: VdaStepStarted | VdaStepProgress | VdaStepDone | VdaStepFailed,
              now: float) -> list[NativeInput]:
        common: dict[str, Any] = {"agent_id": o.serial_number, "ts": now,
                                  "workflow_id": o.workflow_id, "step_id": o.step_id,
                                  "attempt": o.attempt}
        key = o.order_id or f"{o.workflow_id}.{o.step_id}.{o.attempt}"
        if isinstance(o, VdaStepStarted):
            return [StepAccepted(event_id=_event_id(key, "accepted"), **common),
                    StepStarted(event_id=_event_id(key, "started"), **common)]
        if isinstance(o, VdaStepProgress):
            progress = max(0.0, min(1.0, o.progress))
            return [StepProgress(event_id=_event_id(key, f"progress{progress:.4f}"),
                                 progress=progress, **common)]
        if isinstance(o, VdaStepDone):
            done: list[NativeInput] = [
                StepDone(event_id=_event_id(key, "done"), outputs=o.outputs, **common)]
            self._cancels_of(o.workflow_id, o.step_id)  # finished anyway: the core flags it
            barrier = self._sync_point(o.workflow_id, o.step_id, o.attempt)
            if barrier is not None:  # the AGV stands at the step's goal: it has arrived
                done.append(SyncArrival(event_id=_event_id(key, "arrived"),
                                        **{**common, "step_id": barrier}))
            return done
        self._sync_point(o.workflow_id, o.step_id, o.attempt)
        self._cancels_of(o.workflow_id, o.step_id)  # it stopped by failing
        try:
            error_type = check_identifier(o.error_type)
        except ProtocolError:
            error_type = "vda_error"
        return [StepFailed(event_id=_event_id(key, "failed"), error_type=error_type,
                           message=o.message[:1024], retryable=o.retryable, **common)]

    def _sync_point(self, workflow_id: str, step_id: str, attempt: int) -> str | None:
        """The barrier of a step that ended, forgotten now."""
        barrier = self._kept.sync_points.pop((workflow_id, step_id, attempt), None)
        self._dirty = self._dirty or barrier is not None
        return barrier
