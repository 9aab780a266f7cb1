"""The edge runtime process: a thin MQTT shell around the sans-IO core (docs/design.md §3).

Threads and their jobs:

- paho's network thread receives messages; its callbacks (``BrokerLink``) only put what
  arrived on a queue;
- the loop thread (this module) takes a batch from the queue, decodes and checks each
  message (``Intake``), runs ``core.handle`` on it, commits every event of the batch in
  ONE ``EventStore.append``, and only then publishes the effects (each event as the very
  payload the store kept), acknowledges the batch's QoS 1 messages to the broker and arms
  timers. Nothing is published for an event that is not durable, and no agent event or
  command is acknowledged before its effects are: agents get an ``EventAck`` after the
  commit, and commands to agents wait in a durable outbox until the agent's ``CommandAck``
  (``Delivery``; docs/protocol.md, "Delivery"), so a crash at any moment loses nothing
  that was acknowledged;
- the main thread waits for SIGTERM/SIGINT and asks the loop to drain and stop.
"""

from __future__ import annotations

import gc
import logging
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from edge_runtime.core import Append, Archive, CancelTimer, Effect, Input, Publish, SetTimer
from edge_runtime.shell._batch import Batch, input_kind
from edge_runtime.shell._config import EdgeConfig
from edge_runtime.shell._delivery import Delivery
from edge_runtime.shell._intake import Intake, Reject, VdaInbound
from edge_runtime.shell._link import BrokerLink, Received
from edge_runtime.shell._metrics import EdgeMetrics
from edge_runtime.shell._timers import TimerHeap
from edge_runtime.shell._wiring import CoreHost, open_core
from edge_runtime.vda5050 import VdaTranslation
from topics import (
    AgentConn,
    CommandAck,
    ErrorReport,
    HubCommand,
    check_edge_event,
    edge_topic,
    encode,
)

__all__ = ["EdgeRuntime"]

_log = logging.getLogger("fleetflow.edge")

_REPLAY_LIMIT = 10_000
"""Most events one ``replay`` hub command re-publishes; the hub asks again for more."""


class EdgeRuntime:
    """One facility's edge runtime: store, core, MQTT link, metrics, batch loop."""

    def __init__(self, config: EdgeConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        """The options this runtime was started with."""
        self.clock = clock
        """Wall-clock time in seconds; the only clock the core sees (as ``now``)."""
        self.metrics = EdgeMetrics()
        """This runtime's Prometheus metrics."""
        self.metrics_port: int | None = None
        """Bound metrics port once started, if metrics are on."""
        self.exit_code = 0
        """0 after a clean stop; 1 if the loop died (the store failed)."""
        # SimpleQueue: a C deque with one lock, several times cheaper per item than Queue.
        self._queue: queue.SimpleQueue[Received] = queue.SimpleQueue()
        self._stop_asked = False  # a plain flag, no Event: see request_stop
        self._timers = TimerHeap()
        self._pending: list[Input] = []
        """Inputs of the shell's own making for the next batch (``Restarted``)."""
        self._follow: deque[tuple[Input | VdaInbound, str]] = deque()
        """Inputs (and topics) in ``_handle``: the one in hand first, then those it gave rise to."""
        self._gauges_at = self._vda_tick_at = 0.0
        self._loop_thread: threading.Thread | None = None
        self._topics = {k: edge_topic(config.facility, k) for k in ("events", "cmd", "errors")}
        self._wiring: CoreHost = open_core(config, clock())
        self.core = self._wiring.core
        """The sans-IO core this shell drives."""
        self._transitions = self.core.transitions
        self.store = self._wiring.store
        """The facility's event store (open read-write: RocksDB locks it)."""
        self.workflows = self._wiring.workflow_cache()
        """Reads of any workflow by id (live or archived), with per-tier hit/miss counts."""
        self._intake = Intake(config.facility, known_agent=self._wiring.known_agent)
        self._delivery = Delivery(config.facility, incarnation=f"{self.store.last_seq:x}")
        """Event acks to agents and the command outbox (docs/protocol.md, "Delivery")."""
        self._delivery.load(self.store.outbox(), clock())
        self._refusal: str | None = None
        """Why the input just handled was refused (set by ``_reject``), else ``None``."""
        f = config.facility
        subscriptions = [(f"fleetflow/v1/{f}/agent/+/state", 0),
                         (f"fleetflow/v1/{f}/agent/+/event", 1),
                         (f"fleetflow/v1/{f}/agent/+/conn", 1), (self._topics["cmd"], 1),
                         # our status echoed, the watchdog's proof the link works (QoS 0)
                         (edge_topic(f, "status"), 0),
                         *self._wiring.vda_subscriptions]
        self._link = BrokerLink(config, self._queue, subscriptions, self.metrics,
                                high_water=lambda: self.store.last_seq, clock=clock)

    # -- lifetime ----------------------------------------------------------------------

    def start(self) -> None:
        """Serve metrics, connect (asynchronously, retrying) and start the batch loop."""
        c = self.config
        if c.metrics_port:
            self.metrics_port = self.metrics.serve(c.metrics_port, c.metrics_host)
        self.metrics.high_water_seq.set(self.store.last_seq)
        self._refresh_gauges()
        self._link.start()
        self._loop_thread = threading.Thread(target=self._loop, name="edge-loop", daemon=True)
        self._loop_thread.start()
        _log.info("edge %s started at seq %d; broker %s://%s:%d", c.facility, self.store.last_seq,
                  "mqtts" if c.tls or c.tls_ca or c.tls_cert else "mqtt", c.host, c.port)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the edge is subscribed on the broker (for tests and ``up``)."""
        return self._link.wait_ready(timeout)

    def request_stop(self) -> None:
        """Ask the loop to drain and stop; safe from a signal handler, also a nested one
        (no lock: a signal inside ``Event.set`` waited for the lock its handler held)."""
        self._stop_asked = True  # the loop looks every batch_wait_s

    def wait(self) -> int:
        """Block until the loop stopped; the exit code (signals are handled meanwhile)."""
        while (thread := self._loop_thread) is not None and thread.is_alive():
            thread.join(0.2)
        return self.exit_code

    def run(self) -> int:
        """Start, stop on SIGTERM/SIGINT, return the exit code (for ``fleetflow edge``)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda _s, _f: self.request_stop())
        self.start()
        return self.wait()

    # -- the batch loop ----------------------------------------------------------------

    def _loop(self) -> None:
        try:
            # The recovered core re-arms its timers (and fresh liveness windows) from now.
            self._pending.append(self._wiring.restarted())
            gc.collect()
            gc.freeze()  # the recovered projection: long-lived (CoreHost.after_commit)
            while not self._stop_asked:
                self._process(self._take_batch())
            self._shutdown()
        except Exception:
            _log.exception("edge loop failed; exiting so that a restart recovers from the log")
            self.exit_code = 1
            self._close()

    def _take_batch(self, wait: float | None = None) -> list[Received]:
        wait = self.config.batch_wait_s if wait is None else wait
        next_at = self._timers.next_at()
        if next_at is not None:
            wait = max(0.0, min(wait, next_at - self.clock()))
        batch: list[Received] = []
        try:
            batch.append(self._queue.get(timeout=wait))
        except queue.Empty:
            return batch
        while len(batch) < self.config.batch_max:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _shutdown(self) -> None:
        """Handle what was received, publish offline status, disconnect.

        Whatever arrives after this drain is never acknowledged (no ``EventAck``, no
        ``command_reply``), so its sender resends it to the next run.
        """
        for _ in range(max(1, self._queue.qsize() // self.config.batch_max + 1)):
            batch = self._take_batch(wait=0.0)
            if not batch:
                break
            self._process(batch)
        self._wiring.snapshot_at_stop()
        self._close()

    def _close(self) -> None:
        try:
            self._link.close()
        finally:
            self._wiring.close()
            _log.info("edge %s stopped at seq %d", self.config.facility, self.store.last_seq)

    def _process(self, batch: list[Received]) -> None:
        now = self.clock()
        work = Batch()
        for own in self._pending:
            self._handle(own, now, "", work)
        self._pending.clear()
        kinds: dict[str, int] = {}
        for timer_id in list(self._timers.due(now)):
            kinds["timer"] = kinds.get("timer", 0) + 1
            self._handle(self._wiring.timer_input(timer_id), now, "", work)
        if self._wiring.vda is not None and now - self._vda_tick_at >= 1.0:
            self._vda_tick_at = now
            self._vda(self._wiring.vda.tick(now), now, "", work)
            work.out.extend(self._wiring.vda_status_due(now, self._link.session))  # edge/vda
        for item in batch:
            if self._link.note(item):
                continue
            work.acks.append(item)
            inbound = self._wiring.decode(self._intake, item.topic, item.payload)
            if isinstance(inbound, Reject):
                self._reject(inbound, now, work)
                continue
            kind = input_kind(inbound)
            kinds[kind] = kinds.get(kind, 0) + 1
            if isinstance(inbound, HubCommand):
                if inbound.action == "replay":
                    self._replay(inbound, item.topic, now, work)
                    continue
                reply_seq = self.core.reply_seq(inbound.command_id)
                if reply_seq is not None:  # applied before: its reply may have been lost
                    self._republish(reply_seq, reply_seq, work)
                    continue
            elif isinstance(inbound, CommandAck):
                key = self._delivery.acknowledged(inbound.agent_id, inbound.command_id)
                if key is not None:
                    work.outbox[key] = None
                self._delivery.took(inbound.agent_id, inbound.event_id)
                # The core too: it may be the confirmation a cancel or a pause waits for.
                self._handle(inbound, now, item.topic, work)
                continue
            elif isinstance(inbound, AgentConn) and inbound.online:
                self._delivery.online(inbound.agent_id, now)
            event_id: str | None = getattr(inbound, "event_id", None)
            self._refusal = None
            self._handle(inbound, now, item.topic, work)
            if event_id is not None:
                agent_id: str = inbound.agent_id  # type: ignore[union-attr]
                if self._refusal is None:
                    self._delivery.took(agent_id, event_id)
                else:
                    self._delivery.refused(agent_id, event_id, self._refusal)
        for topic, payload in self._delivery.due(now):  # durable already: no commit needed
            work.out.append((topic, payload, 1, False))
        for kind, count in kinds.items():  # per batch: a labelled inc costs a lock and a lookup
            self.metrics.inputs.labels(kind=kind).inc(count)
        self.metrics.queue_depth.set(self._queue.qsize())
        self._flush(work)
        if now - self._gauges_at >= 1.0:
            self._gauges_at = now
            self._refresh_gauges()
        self._link.maybe_status(now)

    def _flush(self, work: Batch) -> None:
        """Commit the work's events in one WriteBatch, then publish, then acknowledge."""
        if not (work.appends or work.out or work.acks or work.outbox or self._wiring.commit_due):
            return
        now = self.clock()
        for agent_id, command_id, cmd_topic, command in work.sent:  # kept until acknowledged
            key, entry = self._delivery.sent(agent_id, command_id, cmd_topic, command, now)
            work.outbox[key] = entry
        self.metrics.batch_size.observe(len(work.acks))
        payloads: Iterator[bytes] = iter(())
        if work.appends or work.outbox or self._wiring.commit_due:  # VDA records, inputs: durable
            started = time.perf_counter()
            payloads = iter(self._wiring.commit([a.event for a in work.appends], work.records,
                                                work.outbox))
            self.metrics.commit_seconds.observe(time.perf_counter() - started)
            kinds: dict[str, int] = {}
            for a in work.appends:
                kinds[a.event.kind] = kinds.get(a.event.kind, 0) + 1
            for kind, count in kinds.items():
                self.metrics.events.labels(kind=kind).inc(count)
            transitions = self.core.transitions
            self.metrics.transitions.inc(max(0, transitions - self._transitions))
            self._transitions = transitions
            self.metrics.high_water_seq.set(self.store.last_seq)
        # Only now, after the commit: the events these acknowledge are durable.
        work.out.extend((t, p, 1, False) for t, p in self._delivery.event_acks(now))
        started = time.perf_counter()
        client, session = self._link.client, self._link.session
        with client.one_wakeup():
            for topic, payload, qos, retain in work.out:
                # An event's payload is what the store kept of it, in the events' order.
                client.publish(topic, next(payloads) if payload is None else payload,
                               qos=qos, retain=retain)
            for item in work.acks:
                # A message of an earlier connection is not acked: the broker resends it on
                # the new one (the core drops the duplicate), and its old mid may now name
                # another message.
                if item.qos and item.session == session:
                    client.ack(item.mid, item.qos)
        self.metrics.publish_seconds.observe(time.perf_counter() - started)
        wall = self.clock()
        for item in work.acks:
            self.metrics.input_latency_seconds.observe(max(0.0, wall - item.at))
        if work.appends:
            self._wiring.after_commit()
        work.clear()

    def _handle(self, inbound: Input | VdaInbound, now: float, topic: str, work: Batch) -> None:
        """Handle one input, then in turn the core inputs the VDA bridge derived meanwhile.

        Those (a step failed because its order could not be planned) wait until the effects
        in hand are all collected: handled from inside ``_collect``, their events landed among
        that input's own, and the batch reached the store out of seq order (the edge died).
        """
        follow = self._follow
        follow.append((inbound, topic))
        if len(follow) > 1:
            return  # from within the loop below (via _collect and _vda): taken in turn
        try:
            while follow:
                self._handle_one(*follow[0], now, work)
                follow.popleft()
        except BaseException:
            follow.clear()
            raise

    def _handle_one(self, inbound: Input | VdaInbound, topic: str, now: float,
                    work: Batch) -> None:
        """Run one input through the core (or the VDA master) and collect its effects; all or
        nothing, so that a failure leaves the inputs before it untouched and in order."""
        seq = self.core.last_seq
        mark, follow = work.mark(), len(self._follow)
        try:
            if isinstance(inbound, VdaInbound):
                self._vda(self._wiring.vda_inbound(inbound, now), now, topic, work)
            else:
                self._collect(self._wiring.handle(inbound, now), now, work)
        except Exception as exc:
            # Drop what it collected before failing (an effect may fail halfway, in _collect).
            work.rollback(mark)
            while len(self._follow) > follow:
                self._follow.pop()
            refused = isinstance(exc, self._wiring.refusals)
            if not refused:
                _log.exception("the core failed on an input from %s", topic or "the shell")
            reason = str(getattr(exc, "reason", "refused")) if refused else "internal_error"
            agent = getattr(inbound, "agent_id", None)
            command = inbound.command_id if isinstance(inbound, HubCommand) else None
            self._reject(Reject(reason, str(exc) or type(exc).__name__, topic, agent, command),
                         now, work)
            if self.core.last_seq != seq or self.core.needs_rebuild:
                # Half a change was applied in memory: commit what came before it, then
                # rebuild the core from the durable log, which never saw that half.
                _log.error("the core changed state before failing; rebuilding it from the log")
                self._flush(work)
                self._wiring.rebuild()
                self.core = self._wiring.core
                self._transitions = self.core.transitions
                self._pending.append(self._wiring.restarted())

    def _vda(self, translation: VdaTranslation, now: float, topic: str, work: Batch) -> None:
        """The VDA master's messages go out; its core inputs go through the core after the
        input being handled, if any (``_handle``), else at once."""
        for message in translation.messages:
            self._collect([Publish(message.topic, message.message, 0)], now, work)  # type: ignore[arg-type]
        for native in translation.inputs:
            self._handle(native, now, topic, work)

    def _collect(self, effects: list[Effect], now: float, work: Batch) -> None:
        facility = self.config.facility
        for effect in effects:
            if isinstance(effect, Append):
                # Refused here, before anything is durable, if a hub could not take it.
                check_edge_event(effect.event, facility)
                work.appends.append(effect)
                work.out.append((self._topics["events"], None, 1, False))
            elif isinstance(effect, Publish):
                vda = self._wiring.vda
                if vda is not None and vda.handles(effect):
                    self._vda(vda.command(effect, now), now, effect.topic, work)
                    continue
                payload = self._wiring.encode_publish(effect)
                if payload is not None:
                    work.out.append((effect.topic, payload, effect.qos, effect.retain))
                    command_id = getattr(effect.message, "command_id", None)
                    if command_id is not None and effect.topic.endswith("/cmd"):
                        work.sent.append((effect.topic.rsplit("/", 2)[1], command_id,
                                          effect.topic, payload))
            elif isinstance(effect, SetTimer):
                self._timers.set(effect.timer_id, effect.at)
            elif isinstance(effect, CancelTimer):
                self._timers.cancel(effect.timer_id)
            elif isinstance(effect, Archive):
                work.records[effect.workflow_id] = effect.record

    def _reject(self, reject: Reject, now: float, work: Batch) -> None:
        self._refusal = f"{reject.reason}: {reject.message}"
        self.metrics.rejects.labels(reason=reject.reason).inc()
        _log.info("rejected %s: %s (%s)", reject.topic, reject.reason, reject.message)
        report: ErrorReport = reject.report(now)
        work.out.append((self._topics["errors"], encode(report), 0, False))

    def _replay(self, cmd: HubCommand, topic: str, now: float, work: Batch) -> None:
        """Re-publish stored events for a hub that found a gap (served here, not by the core)."""
        from_seq, to_seq = cmd.args.get("from_seq", 1), cmd.args.get("to_seq")
        if type(from_seq) is not int or not (to_seq is None or type(to_seq) is int):
            self._reject(Reject("schema", "replay needs integer from_seq (and to_seq)", topic),
                         now, work)
            return
        self._republish(from_seq, to_seq, work)

    def _republish(self, from_seq: int, to_seq: int | None, work: Batch) -> None:
        """Publish stored events again, as stored (at most ``_REPLAY_LIMIT``)."""
        for payload in self._wiring.replay(from_seq, to_seq, _REPLAY_LIMIT):
            work.out.append((self._topics["events"], payload, 1, False))

    def _refresh_gauges(self) -> None:
        active, agents = self._wiring.gauges()
        self.metrics.active_workflows.set(active)
        self.metrics.set_agents(agents)
        self.metrics.outbox.set(self._delivery.outstanding)
