"""Phase 3 of ``fleetflow bench e2e``: reaction time under load, wire to wire.

Scripted worker agents carry chain workflows through the edge while every agent streams
state as background load; a sample is the time from publishing a ``step_done`` to receiving
the ``assign`` of the workflow's next step, both stamped in this process.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from typing import Any

from bench._e2e_edge import CHAIN_STEPS, FACILITY, TEMPLATE, EdgeUnderTest
from bench.wire import Wire
from topics import (
    AgentState,
    Assign,
    Bid,
    Cfp,
    CommandAck,
    EventAck,
    HubCommand,
    ProtocolError,
    StepAccepted,
    StepDone,
    StepStarted,
    agent_topic,
    decode_agent_command,
    edge_topic,
    encode,
)

__all__ = ["reaction_phase", "workers"]


def workers(agents: int) -> int:
    """Agents that work the chain workflows (the rest only stream state)."""
    return max(2, agents // 5)


class _ScriptedAgents:
    """The benchmark's worker agents, scripted: they answer commands at once and hold each
    step for 0.5 to 1.5 times ``hold`` seconds (seeded jitter, so that workflows do not march
    in lockstep). Runs on paho's thread; the publisher loop reads ``due``.

    They keep the delivery contract's agent side that a healthy broker exercises
    (docs/protocol.md, "Delivery"): every command is answered with a ``CommandAck`` and a
    command id is applied once — else the edge's outbox resends each assign and the step
    would be worked again. They do not resend events (nothing is lost here)."""

    def __init__(self, hold: float, seed: int = 1) -> None:
        self.hold = hold
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.due: list[tuple[float, int, str, bytes, str, bool]] = []
        """(when, tie, topic, payload, workflow id awaiting its next assign or "", done?)."""
        self.done_sent: dict[str, float] = {}
        """workflow id → perf_counter of its last step_done publish (awaiting the assign
        of the next step; the workflows are chains, so exactly one follows)."""
        self.samples: list[float] = []
        self.tasks: dict[str, tuple[str, str]] = {}
        """agent id → (workflow, step) it works on."""
        self.errors = 0
        self.measuring_from = float("inf")
        self._n = 0
        self._seen: set[str] = set()
        """Command ids applied (a resent command is acknowledged again, not re-applied)."""

    def on_command(self, topic: str, payload: bytes, at: float) -> None:
        try:
            cmd = decode_agent_command(payload)
        except ProtocolError:
            self.errors += 1
            return
        agent_id = topic.split("/")[4]
        event_topic = agent_topic(FACILITY, agent_id, "event")
        with self.lock:
            if isinstance(cmd, EventAck):
                return
            self.push(at, event_topic, encode(CommandAck(
                event_id=self._eid(agent_id), agent_id=agent_id, ts=time.time(),
                command_id=cmd.command_id)))
            if cmd.command_id in self._seen:
                return
            self._seen.add(cmd.command_id)
            if isinstance(cmd, Assign):
                sent = self.done_sent.pop(cmd.workflow_id, None)
                if sent is not None and sent >= self.measuring_from:
                    self.samples.append(at - sent)
                self.tasks[agent_id] = (cmd.workflow_id, cmd.step_id)
                common: dict[str, Any] = {"agent_id": agent_id, "workflow_id": cmd.workflow_id,
                                          "step_id": cmd.step_id, "attempt": cmd.attempt}
                for cls, delay in ((StepAccepted, 0.0), (StepStarted, 0.0)):
                    self.push(at + delay, event_topic, encode(cls(
                        event_id=self._eid(agent_id), ts=time.time(), **common)))
                last = cmd.step_id == f"s{CHAIN_STEPS - 1}"
                hold = self.hold * (0.5 + self.rng.random())
                self.push(at + hold, event_topic, encode(StepDone(
                    event_id=self._eid(agent_id), ts=time.time(), outputs={"ok": True},
                    **common)), "" if last else cmd.workflow_id, done=True)
            elif isinstance(cmd, Cfp):
                self.push(at, event_topic, encode(Bid(
                    event_id=self._eid(agent_id), agent_id=agent_id, ts=time.time(),
                    cfp_id=cmd.cfp_id, cost=1.0)))

    def _eid(self, agent_id: str) -> str:
        self._n += 1
        return f"{agent_id}-e{self._n}"

    def push(self, when: float, topic: str, payload: bytes, wf: str = "", done: bool = False
             ) -> None:
        self._n += 1
        heapq.heappush(self.due, (when, self._n, topic, payload, wf, done))

    def take_due(self, now: float) -> list[tuple[str, bytes, str]]:
        out = []
        with self.lock:
            while self.due and self.due[0][0] <= now:
                _, _, topic, payload, wf, done = heapq.heappop(self.due)
                out.append((topic, payload, wf))
                if done:
                    self.tasks.pop(topic.split("/")[4], None)
        return out


def reaction_phase(edge: EdgeUnderTest, ids: list[str], states: list[tuple[str, bytes]],
                   rate: float, seconds: float) -> dict[str, Any]:
    """Offer ``rate`` msg/s for ``seconds`` (``states``: one idle state per agent of ``ids``,
    as background load) while the workers carry chain workflows; the reaction figures."""
    n_workers = workers(len(ids))
    workflows = max(1, n_workers // 2)
    buckets_before: dict[float, float] | None = None
    script = _ScriptedAgents(hold=0.5)
    cmds = Wire(edge.port, "bench-agents", [(f"fleetflow/v1/{FACILITY}/agent/+/cmd", 1)],
                script.on_command)
    pub = Wire(edge.port, "bench-load-pub", [])
    load = [(agent_topic(FACILITY, agent_id, "state"), payload) for agent_id, payload in states]
    try:
        t0 = time.perf_counter()
        for i in range(workflows):  # staggered over one hold time
            with script.lock:
                script.push(t0 + script.hold * i / workflows, edge_topic(FACILITY, "cmd"),
                            encode(HubCommand(
                                command_id=f"bench-create-{i}", action="create_workflow",
                                args={"template": TEMPLATE, "workflow_id": f"wf{i}"})))
        script.measuring_from = t0 + min(2.0, seconds / 4)  # warm-up excluded
        sent = events = 0
        k = 0
        while (now := time.perf_counter()) - t0 < seconds:
            if buckets_before is None and now >= script.measuring_from:
                buckets_before = edge.latency_buckets()  # the edge's view, after warm-up
            for topic, payload, wf in script.take_due(now):
                if wf:  # stamped before publishing: the assign may come back at once
                    with script.lock:
                        script.done_sent[wf] = time.perf_counter()
                pub.publish(topic, payload, qos=1)
                sent += 1
                events += 1
            budget = int(rate * (now - t0)) - sent
            for _ in range(max(0, budget)):
                index = k % len(ids)
                k += 1
                topic, payload = load[index]
                if index < n_workers:  # a worker says what it is doing
                    payload = _worker_state(ids[index], script)
                pub.publish(topic, payload)
                sent += 1
            time.sleep(0.001)
        elapsed = time.perf_counter() - t0
        time.sleep(0.5)  # let the last reactions arrive
    finally:
        pub.close()
        cmds.close()
    samples = sorted(script.samples)
    before = buckets_before or {}
    buckets = {le: n - before.get(le, 0.0) for le, n in edge.latency_buckets().items()}
    edge_p99 = _bucket_quantile(buckets, 0.99)
    return {
        "edge_input_latency_p99_le_ms": _ms(edge_p99) if edge_p99 < float("inf") else None,
        "reaction_p50_ms": _ms(_quantile(samples, 0.50)),
        "reaction_p99_ms": _ms(_quantile(samples, 0.99)),
        "reaction_max_ms": _ms(samples[-1] if samples else 0.0),
        "reaction_samples": len(samples),
        "offered_msgs_per_s": round(sent / elapsed),
        "offered_events_per_s": round(events / elapsed),
        "reaction_seconds": round(elapsed, 1),
        "workflows": workflows,
    }


def _worker_state(agent_id: str, script: _ScriptedAgents) -> bytes:
    task = script.tasks.get(agent_id)
    return encode(AgentState(
        agent_id=agent_id, ts=time.time(), status="busy" if task else "idle", battery=80.0,
        node="n1", workflow_id=task[0] if task else None, step_id=task[1] if task else None))


def _bucket_quantile(buckets: dict[float, float], q: float) -> float:
    """The upper bound of the histogram bucket holding quantile ``q`` (inf if beyond)."""
    total = buckets.get(float("inf"), 0.0)
    for le in sorted(buckets):
        if total and buckets[le] >= q * total:
            return le
    return float("inf")


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)
