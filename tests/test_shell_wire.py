"""The edge shell's hot paths: buffered MQTT client on a real Mosquitto, event encoding.

An event is checked by the shell (``check_edge_event``) and packed by the store
(``pack_edge_events``, inside ``append``); together they must be ``encode``, byte for byte.
"""

from __future__ import annotations

import collections
import enum
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from conftest import run_mosquitto
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from edge_runtime.core import Event
from edge_runtime.shell import BufferedClient
from topics import check_edge_event, encode, pack_edge_events


@pytest.fixture
def broker(mosquitto_bin: str, tmp_path: Path) -> Iterator[int]:
    """A Mosquitto on a free port with no queue or in-flight limits (floods stay intact)."""
    with run_mosquitto(mosquitto_bin, tmp_path,
                       extra_conf="max_queued_messages 0\nmax_inflight_messages 0\n") as port:
        yield port


def _client(port: int, name: str, raw: bool) -> tuple[BufferedClient, list[Any],
                                                       threading.Event]:
    got: list[Any] = []
    ready = threading.Event()
    c = BufferedClient(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv311,
                       manual_ack=True)
    c.max_inflight_messages_set(0)
    def keep(topic: str, payload: bytes, mid: int, qos: int) -> None:
        got.append((topic, payload, mid, qos))
        if qos:
            c.ack(mid, qos)

    if raw:
        c.on_raw_message = lambda t, p, mid, q: keep(t.decode(), p, mid, q)
    else:
        c.on_message = lambda _c, _u, m: keep(m.topic, bytes(m.payload), m.mid, m.qos)
    c.on_subscribe = lambda *_a: ready.set()
    c.on_connect = lambda cl, *_a: cl.subscribe("wire/#", 1)
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert ready.wait(10)
    return c, got, ready


def _flood(port: int) -> list[tuple[str, bytes, int]]:
    """Publish a mixed flood (QoS 0 and 1, tiny to 200 KiB); what was sent, in order."""
    sent = [(f"wire/{i % 7}", bytes([i % 251]) * (i % 300 + (200_000 if i % 997 == 5 else 0)),
             i % 2) for i in range(3000)]
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="wire-pub", protocol=mqtt.MQTTv311)
    pub.max_inflight_messages_set(0)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    try:
        infos = [pub.publish(t, p, qos=q) for t, p, q in sent]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        pub.disconnect()
        pub.loop_stop()
    return sent


def _wait_for(got: list[Any], n: int) -> None:
    deadline = time.monotonic() + 20
    while len(got) < n and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.parametrize("raw", [True, False])
def test_buffered_client_receives_a_flood_intact_and_in_order(broker: int, raw: bool) -> None:
    """Every message of a mixed flood arrives whole, in order, over either callback."""
    client, got, _ = _client(broker, f"wire-sub-{raw}", raw)
    try:
        sent = _flood(broker)
        _wait_for(got, len(sent))
        for qos in (0, 1):  # the broker orders each QoS stream, not the two together
            assert [(t, p) for t, p, _m, q in got if q == qos] == [
                (t, p) for t, p, q in sent if q == qos]
        assert all(mid > 0 for *_x, mid, q in got if q == 1)
    finally:
        client.disconnect()
        client.loop_stop()


def test_publishes_in_one_wakeup_are_all_sent_and_acknowledged(broker: int) -> None:
    """Publishes queued under one wake-up all reach the broker, and their PUBACKs count."""
    client, got, _ = _client(broker, "wire-self", raw=True)
    try:
        with client.one_wakeup():
            infos = [client.publish(f"wire/own/{i}", str(i).encode(), qos=i % 2)
                     for i in range(500)]
        for info in infos:
            info.wait_for_publish(10)
            assert info.is_published()
        _wait_for(got, 500)
        assert [p for _t, p, _m, _q in got] == [str(i).encode() for i in range(500)]
    finally:
        client.disconnect()
        client.loop_stop()


_ids = st.from_regex(r"[a-z][a-z0-9_.-]{0,20}", fullmatch=True)
_scalars = st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(
    allow_nan=False, allow_infinity=False) | st.text(max_size=30)
_data = st.dictionaries(st.text(max_size=10) | st.text(min_size=1020, max_size=1030), st.recursive(
    _scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
        st.text(max_size=8), kids, max_size=4), max_leaves=12), max_size=6)


def _checked_and_packed(event: Event, facility: str) -> bytes:
    """What the edge streams of ``event``: the shell's check, then the store's packing."""
    check_edge_event(event, facility)
    return pack_edge_events([event], facility)[0]


@settings(max_examples=300, deadline=None)
@given(seq=st.integers(1, 2**63 - 1), hlc=st.integers(0, 2**63 - 1), kind=_ids,
       workflow_id=st.none() | _ids, data=_data, facility=_ids)
def test_event_encoding_is_byte_for_byte_encode(seq: int, hlc: int, kind: str,
                                                workflow_id: str | None,
                                                data: dict[str, Any], facility: str) -> None:
    """The fast event encoding gives exactly the bytes of encode(event.to_wire(f)), or its error."""
    event = Event(seq, hlc, kind, workflow_id, data)
    try:
        slow = encode(event.to_wire(facility))
    except Exception as exc:
        with pytest.raises(type(exc)) as fast:
            _checked_and_packed(event, facility)
        assert str(fast.value) == str(exc)
        return
    assert _checked_and_packed(event, facility) == slow


@pytest.mark.parametrize("event", [
    Event(0, 1, "k"), Event(1, -1, "k"), Event(1, 1, "bad/kind"), Event(1, 1, "k", "w#1"),
    Event(1, 1, "k", None, {"x": float("nan")}), Event(1, 1, "k", None, {"x": {1, 2}}),
    Event(1, 1, "k", None, {"s": "\ud800"}), Event(1, 1, "k", None, {"x": "y" * 2_000_000}),
    Event(1, 1, "k", None, {"k" * 1025: 1}),
    Event(1, 1, "k", None, {f"k{i}": "y" * 1000 for i in range(70)}),
])
def test_event_encoding_refuses_what_encode_refuses(event: Event) -> None:
    """A bad event fails the fast encoding with encode's own error."""
    with pytest.raises(Exception) as slow:
        encode(event.to_wire("fac"))
    with pytest.raises(type(slow.value)) as fast:
        _checked_and_packed(event, "fac")
    assert str(fast.value) == str(slow.value)


class _Colour(enum.StrEnum):
    RED = "red"


@pytest.mark.parametrize("data", [
    {"t": (1, 2)}, {"e": _Colour.RED}, {"n": collections.OrderedDict(a=1)}, {"i": True},
])
def test_values_of_subclassed_types_encode_as_encode_does(data: dict[str, Any]) -> None:
    """Tuples, enum members and dict subclasses in data: the exact-type packing falls back."""
    event = Event(1, 1, "k", None, data)
    assert _checked_and_packed(event, "fac") == encode(event.to_wire("fac"))


def test_a_field_of_an_unusual_type_is_refused() -> None:
    """A bool seq, which the model would turn into 1, is refused: its bytes would differ."""
    with pytest.raises(Exception, match="plain type"):
        check_edge_event(Event(True, 1, "k"), "fac")


class _ReferenceTimers:
    """The obvious timer model: a dict of deadlines, due ones sorted by (time, set order)."""

    def __init__(self) -> None:
        self.live: dict[str, tuple[float, int]] = {}
        self.n = 0

    def set(self, timer_id: str, at: float) -> None:
        self.n += 1
        self.live[timer_id] = (at, self.n)

    def cancel(self, timer_id: str) -> None:
        self.live.pop(timer_id, None)

    def due(self, now: float) -> list[str]:
        fired = sorted((k, t) for t, k in self.live.items() if k[0] <= now)
        for _k, timer_id in fired:
            del self.live[timer_id]
        return [timer_id for _k, timer_id in fired]

    def next_at(self) -> float | None:
        return min((k[0] for k in self.live.values()), default=None)


_timer_ops = st.lists(st.one_of(
    st.tuples(st.just("set"), st.sampled_from("abcdef"), st.integers(0, 30).map(float)),
    st.tuples(st.just("cancel"), st.sampled_from("abcdef"), st.just(0.0)),
    st.tuples(st.just("due"), st.just(""), st.integers(0, 30).map(float)),
), max_size=80)


@settings(max_examples=400, deadline=None)
@given(_timer_ops)
def test_timer_heap_matches_the_obvious_model(ops: list[tuple[str, str, float]]) -> None:
    """Any mix of set, cancel and due fires exactly what a plain dict of deadlines would."""
    from edge_runtime.shell import TimerHeap

    heap, ref = TimerHeap(), _ReferenceTimers()
    for op, timer_id, value in ops:
        if op == "set":
            heap.set(timer_id, value)
            ref.set(timer_id, value)
        elif op == "cancel":
            heap.cancel(timer_id)
            ref.cancel(timer_id)
        else:
            assert list(heap.due(value)) == ref.due(value)
        assert heap.next_at() == ref.next_at()
        assert len(heap) == len(ref.live)


def test_re_arming_a_timer_later_keeps_the_heap_small() -> None:
    """Re-arming one timer later and later many times leaves about one heap entry."""
    from edge_runtime.shell import TimerHeap

    t = TimerHeap()
    t.set("early", 1.0)
    for i in range(10_000):
        t.set("liveness:a", 100.0 + i)
    assert len(t._heap) <= 2
    assert list(t.due(50.0)) == ["early"]
    assert list(t.due(10_099.0)) == ["liveness:a"]
