"""``fleetflow bench soak``: load and soak of one edge on Mosquitto (issue 13), one JSON object.

One real ``python -m fleetflow edge`` on a fresh store and a Mosquitto on a free loopback
port; ``agents`` simulated native agents (``agents_sim.FleetRunner``, many agents per connection
over ``CONNECTIONS`` connections) stream ``AgentState`` at 1 Hz (QoS 0) and work the steps of
``rate`` workflows a second, created by hub commands (``agents_sim.mqtt_hub.HubClient`` on
``edge/cmd``, resent until the ``command_reply``) from a three-step chain template. Both
sides keep the delivery contract (docs/protocol.md, "Delivery"): agents keep every event
until an ``EventAck`` names it and answer every command with a ``CommandAck``.

After ``seconds`` of load no new workflow is created; the run drains (every workflow
completed, every agent event acknowledged; at most ``DRAIN_S``), stops the agents, then the
edge (SIGTERM), and reads the edge's store. Checked (``failures`` lists what broke):

* no QoS 1 message lost: every create answered by its reply; every workflow completed;
  every agent event acknowledged (the agents' outboxes empty, nothing refused or dropped);
  every step report the agents sent is an event of the log (its ``eid``); every event of the
  log arrived on ``edge/events`` at a QoS 1 subscriber — seqs 1..N, byte for byte;
* memory flat: the edge's RSS (``/proc/PID/status``, every ``SAMPLE_S``) grows less than
  10 % from the first window after warm-up to the last window of the load;
* the edge exits 0 and logs no traceback.

Latencies, stamped in this process on messages heard on the broker: agent event → its
``EventAck``; create command → reply; create → ``workflow_completed``; ``step_done`` → the
``Assign`` of the next step.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from agents_sim import AgentSpec, FleetRunner
from agents_sim.mqtt_hub import HubClient
from bench._soak_checks import effects_check, memory_check, quantiles, stream_check
from bench._soak_edge import (
    FACILITY,
    STEP_S,
    STEPS,
    TEMPLATE,
    SoakEdge,
    proc_cpu_s,
    proc_rss_kb,
    run_soak_edge,
)
from bench._soak_watch import AgentTap, EdgeEventRecorder
from bench.wire import start_broker, tmpdir
from broker import stop_process
from edge_runtime.store import EventStore, store_path
from topics import EdgeEvent, HubCommand

__all__ = ["AGENTS", "DRAIN_S", "SOAK_S", "STEPS", "STEP_S", "WORKFLOW_RATE", "run"]

SOAK_S = 300.0
"""Seconds of load of the full run (issue 13: five minutes)."""
AGENTS = 1000
"""Agents of the full run."""
WORKFLOW_RATE = 5.0
"""Workflows created per second."""
CONNECTIONS = 10
"""MQTT connections the agents share (no broker ACL here, so one may speak for many)."""
SAMPLE_S = 2.0
"""Seconds between two samples of the edge's memory."""
DRAIN_S = 90.0
"""Longest wait, after the load, for the last workflows and acknowledgements."""


def warmup_for(seconds: float) -> float:
    """Seconds of the load excluded from the memory baseline: 60 of a full run, a fifth of
    a shorter one."""
    return min(60.0, seconds / 5)


def run(seconds: float = SOAK_S, agents: int = AGENTS, rate: float = WORKFLOW_RATE
        ) -> dict[str, Any]:
    """Run the soak; its figures, ``failures`` (sentences) and ``ok``."""
    if seconds < 10 or agents < 1 or rate <= 0:
        raise ValueError("the soak needs at least 10 s, an agent and a positive rate")
    started = time.monotonic()
    failures: list[str] = []
    result: dict[str, Any] = {"agents": agents, "seconds": seconds, "workflow_rate": rate,
                              "steps_per_workflow": STEPS, "step_s": STEP_S,
                              "warmup_s": warmup_for(seconds)}
    with tmpdir() as tmp, start_broker("mosquitto", Path(tmp)) as port:
        scratch = Path(tmp)
        recorder = EdgeEventRecorder(port, FACILITY)
        try:
            tap = AgentTap(port, FACILITY)
        except BaseException:
            recorder.close()
            raise
        try:
            with run_soak_edge(port, scratch) as edge:
                load = _Load(edge)
                hub = HubClient("127.0.0.1", port, [FACILITY], username=None,
                                client_id="soak-hub").start()
                fleet: FleetRunner | None = None
                try:
                    fleet = _start_fleet(port, agents)
                    _wait_agents(edge, agents)
                    load.run(hub, seconds, rate)
                    _drain(edge, hub, tap, load, failures)
                    result.update(_edge_counters(edge))
                finally:
                    if fleet is not None:
                        fleet.stop()
                    hub.stop()
                result.update(_delivery(fleet, failures), hub_commands_resent=hub.stats.resent)
                recorder.quiet_for(2.0, timeout=30)
                status = stop_process(edge.process, timeout=30)
                recorder.quiet_for(1.0, timeout=10)
                result["edge_exit_status"] = status
                if status != 0:
                    failures.append(f"the edge exited with status {status}: {edge.log_tail()}")
                if "Traceback" in edge.log.read_text(errors="replace"):
                    failures.append(f"the edge logged a traceback: {edge.log_tail(8)}")
        finally:
            tap.close()
            recorder.close()
        with EventStore(store_path(edge.data), FACILITY, read_only=True) as store:
            stored = list(store.read_payloads())
    figures, events = stream_check(recorder.received, stored, failures)
    result.update(figures)
    result.update(_tap_figures(tap, events, failures))
    result.update(load.figures(events, failures))
    result.update(memory_check(load.rss, result["warmup_s"], seconds, failures))
    result["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    result["duration_s"] = round(time.monotonic() - started, 1)
    result["failures"] = failures
    result["ok"] = not failures
    return result


class _Load:
    """The steady part: creates at ``rate``, memory samples, and their stamps."""

    def __init__(self, edge: SoakEdge) -> None:
        self.edge = edge
        self.created: dict[str, float] = {}
        """Workflow id → ``perf_counter`` when its create command was sent."""
        self.replied: dict[str, float] = {}
        self.futures: dict[str, Future[EdgeEvent]] = {}
        self.rss: list[tuple[float, int]] = []
        """(seconds since the load started, KiB)."""
        self.depth: list[float] = []
        """The edge's queue depth (messages received, not yet handled) at each sample."""
        self.cpu: tuple[float, float] = (0.0, 0.0)
        """The edge's CPU seconds at the start and the end of the load."""
        self.load_s = 0.0

    def run(self, hub: HubClient, seconds: float, rate: float) -> None:
        """Create ``rate`` workflows a second for ``seconds``, sampling the edge's memory."""
        pid = self.edge.process.pid
        t0 = time.perf_counter()
        self.cpu = (proc_cpu_s(pid), 0.0)
        next_create = next_sample = t0
        k = 0
        while (now := time.perf_counter()) < t0 + seconds:
            if self.edge.process.poll() is not None:
                raise RuntimeError(f"the edge exited during the soak: {self.edge.log_tail()}")
            if now >= next_create:
                self._create(hub, f"wf{k:06d}")
                k += 1
                next_create = t0 + k / rate
            if now >= next_sample:
                self.rss.append((now - t0, proc_rss_kb(pid)))
                self.depth.append(self.edge.counters("fleetflow_edge_queue_depth").get("", 0.0))
                next_sample += SAMPLE_S
            time.sleep(max(0.0, min(next_create, next_sample) - time.perf_counter()))
        self.load_s = time.perf_counter() - t0
        self.rss.append((self.load_s, proc_rss_kb(pid)))
        self.cpu = (self.cpu[0], proc_cpu_s(pid))

    def _create(self, hub: HubClient, workflow_id: str) -> None:
        cmd = HubCommand(command_id=f"soak-{workflow_id}", action="create_workflow",
                         args={"template": TEMPLATE, "workflow_id": workflow_id},
                         ts=time.time())
        self.created[workflow_id] = time.perf_counter()
        future = hub.send(FACILITY, cmd)
        self.futures[workflow_id] = future

        def stamp(_f: Future[EdgeEvent]) -> None:
            self.replied[workflow_id] = time.perf_counter()

        future.add_done_callback(stamp)

    def unanswered(self) -> list[str]:
        """Workflows whose create has no reply yet."""
        return [w for w, f in self.futures.items() if not f.done()]

    def figures(self, events: dict[int, tuple[EdgeEvent, float]], failures: list[str]
                ) -> dict[str, Any]:
        """Creates answered, workflows completed, and their latencies."""
        refused = [w for w, f in self.futures.items()
                   if f.done() and not f.cancelled() and f.exception() is not None]
        unanswered = [w for w, f in self.futures.items() if not f.done() or f.cancelled()]
        completed = {e.workflow_id: at for e, at in events.values()
                     if e.kind == "workflow_completed" and e.workflow_id is not None}
        not_done = sorted(set(self.created) - set(completed))
        if unanswered or refused:
            failures.append(f"{len(unanswered)} creates unanswered, {len(refused)} refused "
                            f"(first {(unanswered + refused)[:5]})")
        if not_done:
            failures.append(f"{len(not_done)} of {len(self.created)} workflows did not complete "
                            f"(first {not_done[:5]})")
        cpu_pct = 100 * (self.cpu[1] - self.cpu[0]) / self.load_s if self.load_s else None
        return {
            "workflows_created": len(self.created),
            "workflows_completed": len(set(self.created) & set(completed)),
            "edge_cpu_pct": round(cpu_pct, 1) if cpu_pct is not None else None,
            "edge_queue_depth_max": int(max(self.depth, default=0)),
            **quantiles([self.replied[w] - t for w, t in self.created.items()
                         if w in self.replied], "create_reply"),
            **quantiles([completed[w] - t for w, t in self.created.items() if w in completed],
                        "workflow", scale=1.0, unit="s"),
        }


def _start_fleet(port: int, agents: int) -> FleetRunner:
    """The agents, multiplexed over ``CONNECTIONS`` connections of one runner (its
    connections are named ``{facility}-mux-{i}``: two runners of one facility would share
    client ids, and the broker would keep disconnecting one for the other)."""
    specs = [AgentSpec(f"r{i:05d}", "robot", ("soak",), state_period_s=1.0, liveness_s=10.0,
                       seed=i) for i in range(agents)]
    fleet = FleetRunner(FACILITY, specs, port=port, mode="multiplexed", connections=CONNECTIONS)
    fleet.start(timeout=30)
    return fleet


def _wait_agents(edge: SoakEdge, agents: int, timeout: float = 60.0) -> None:
    """Wait until the edge counts every agent online."""
    deadline = time.monotonic() + timeout
    while True:
        online = sum(v for k, v in edge.counters("fleetflow_edge_agents").items()
                     if k != "status=offline")
        if online >= agents:
            return
        if time.monotonic() > deadline or edge.process.poll() is not None:
            raise RuntimeError(f"the edge knows {online:.0f} of {agents} agents after "
                               f"{timeout} s: {edge.log_tail()}")
        time.sleep(0.5)


def _drain(edge: SoakEdge, hub: HubClient, tap: AgentTap, load: _Load,
           failures: list[str]) -> None:
    """Wait (at most ``DRAIN_S``) until every create is answered, no workflow is active and
    the tap saw every agent event acknowledged."""
    deadline = time.monotonic() + DRAIN_S
    while time.monotonic() < deadline:
        active = edge.counters("fleetflow_edge_active_workflows").get("", 0.0)
        if not load.unanswered() and not hub.pending() and active == 0 and not tap.unacked():
            return
        time.sleep(0.5)
    failures.append(f"not drained after {DRAIN_S} s: {len(load.unanswered())} creates "
                    f"unanswered, {len(tap.unacked())} agent events unacknowledged")


def _edge_counters(edge: SoakEdge) -> dict[str, Any]:
    """What the edge itself counted: states handled, high-water seq, rejects."""
    inputs = edge.counters("fleetflow_edge_inputs_total")
    rejects = edge.counters("fleetflow_edge_rejects_total")
    return {"edge_states_handled": int(inputs.get("kind=agent_state", 0)),
            "edge_inputs_handled": int(sum(inputs.values())),
            "edge_rejects": int(sum(rejects.values()))}


def _delivery(fleet: FleetRunner | None, failures: list[str]) -> dict[str, Any]:
    """The agents' side of delivery, read after their runner stopped."""
    sent = acked = refused = dropped = resent = pending = 0
    if fleet is not None:
        for behaviour in fleet.behaviours.values():
            stats = behaviour.delivery.stats
            sent, acked, refused = sent + stats.sent, acked + stats.acked, refused + stats.refused
            dropped, resent = dropped + stats.dropped, resent + stats.resent
            pending += len(behaviour.delivery.outbox)
    if pending or refused or dropped or sent != acked:
        failures.append(f"agent events: {sent} sent, {acked} acknowledged, {refused} refused, "
                        f"{dropped} dropped, {pending} still unacknowledged")
    errors = fleet.errors if fleet is not None else []
    if errors:
        failures.append(f"the agents could not decode {len(errors)} commands: {errors[:3]}")
    return {"agent_events_sent": sent, "agent_events_acked": acked,
            "agent_events_refused": refused, "agent_events_dropped": dropped,
            "agent_events_resent": resent, "agent_events_unacked": pending}


def _tap_figures(tap: AgentTap, events: dict[int, tuple[EdgeEvent, float]],
                 failures: list[str]) -> dict[str, Any]:
    """What the tap saw: acknowledgement and reaction latencies, and the effects check."""
    if tap.counts.errors:
        failures.append(f"the tap failed on {len(tap.counts.errors)} messages: "
                        f"{tap.counts.errors[:3]}")
    unacked = tap.unacked()
    if unacked:
        failures.append(f"{len(unacked)} agent events seen on the broker were never "
                        f"acknowledged (first {unacked[:5]})")
    if tap.refused:
        failures.append(f"the edge refused {len(tap.refused)} agent events: "
                        f"{list(tap.refused.items())[:3]}")
    reports = {e for e, kind in tap.kind_of.items() if kind.startswith("step_")}
    return {
        "agent_events_seen": len(tap.first_seen),
        "agent_event_copies_seen": tap.counts.event_copies,
        **effects_check(reports, events, tap.refused, failures),
        **quantiles([tap.acked[e] - t for e, t in tap.first_seen.items() if e in tap.acked],
                    "event_ack"),
        **quantiles([d for _, d in tap.reaction], "assign_reaction"),
    }
