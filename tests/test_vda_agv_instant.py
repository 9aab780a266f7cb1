"""The test AGV reads instant actions only under the key it is configured for (the document's
``actions`` or the early 2.0 draft's ``instantActions``), refuses anything else with a
``validationError``, and survives any message on its MQTT connection."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agents_sim.vda_agv import AgvModel, AgvRunner, run_agv
from topics import decode_vda, encode_vda

M, S = "acme", "agv1"
T0 = 1_700_000_000.0
INSTANT_TOPIC = f"uagv/v2/{M}/{S}/instantActions"


def agv(instant_key: str = "actions", version: str = "2.0.0") -> AgvModel:
    return AgvModel(M, S, node_id="n0", x=0.0, y=0.0, version=version, now=T0,
                    instant_key=instant_key)  # type: ignore[arg-type]


def pause(*keys: str, version: str = "2.0.0", header: int = 0) -> dict[str, Any]:
    """A startPause message with its array under each of ``keys``."""
    actions = [{"actionType": "startPause", "actionId": f"p{header}", "blockingType": "HARD"}]
    return {"headerId": header, "timestamp": "2024-01-01T00:00:00.000Z", "version": version,
            "manufacturer": M, "serialNumber": S, **{k: list(actions) for k in keys}}


def validation_errors(model: AgvModel) -> list[dict[str, Any]]:
    return [e for e in model.errors if e["errorType"] == "validationError"]


def topic_ref(error: dict[str, Any]) -> str | None:
    refs = {r["referenceKey"]: r["referenceValue"] for r in error["errorReferences"]}
    return refs.get("topic")


# --- the model: which key it reads ------------------------------------------------------


@pytest.mark.parametrize("key", ["actions", "instantActions"])
def test_an_agv_performs_instant_actions_under_its_own_key(key: str) -> None:
    """Configured for a key, the AGV pauses on a message carrying it (alone or with the other)."""
    for keys in ((key,), ("actions", "instantActions")):
        a = agv(key)
        a.receive_instant_actions(pause(*keys), T0)
        assert a.paused and not a.errors


@pytest.mark.parametrize(("key", "other"), [("actions", "instantActions"),
                                            ("instantActions", "actions")])
def test_an_agv_refuses_instant_actions_under_the_other_key(key: str, other: str) -> None:
    """Only the other key: a validationError naming the topic, and nothing is performed."""
    a = agv(key)
    (state,) = [m for k, m in a.receive_instant_actions(pause(other, header=7), T0)
                if k == "state"]
    encode_vda(state, "state")
    (error,) = validation_errors(a)
    assert not a.paused and not a.actions
    assert error["errorLevel"] == "WARNING" and key in error["errorDescription"]
    assert {"referenceKey": "headerId", "referenceValue": "7"} in error["errorReferences"]
    assert topic_ref(error) == "instantActions"
    assert state["errors"] == a.errors


def test_an_action_without_its_fields_is_refused_not_raised() -> None:
    """An action lacking actionId (never past decode_vda, but the model is sans-IO) is refused."""
    a = agv()
    message = pause("actions")
    del message["actions"][0]["actionId"]
    a.receive_instant_actions(message, T0)
    assert [topic_ref(e) for e in validation_errors(a)] == ["instantActions"]
    assert not a.paused


def test_an_unknown_instant_key_is_a_configuration_error() -> None:
    """The AGV reads `actions` or `instantActions`, nothing else."""
    with pytest.raises(ValueError, match="instant_key"):
        agv("instant_actions")


# --- the runner: nothing kills its MQTT handling ----------------------------------------


class StateWatch:
    """Records the AGV's state messages as published on the broker."""

    def __init__(self, port: int) -> None:
        self.states: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="state-watch")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"uagv/v2/{M}/{S}/state", 0)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.states.append(decode_vda(bytes(msg.payload), "state"))
            self._cond.notify_all()

    def wait_for(self, what: Callable[[dict[str, Any]], bool], timeout: float = 10.0
                 ) -> dict[str, Any]:
        """The first state published from now on for which ``what`` holds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = len(self.states)
            while True:
                for state in self.states[seen:]:
                    if what(state):
                        return state
                seen = len(self.states)
                left = deadline - time.monotonic()
                assert left > 0, f"no such state within {timeout}s"
                self._cond.wait(min(left, 0.2))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def running_agv(mosquitto_port: int) -> Iterator[tuple[AgvRunner, StateWatch, mqtt.Client]]:
    """A test AGV expecting ``instantActions`` on a broker, a state watcher and a publisher."""
    watch = StateWatch(mosquitto_port)
    runner = run_agv("127.0.0.1", mosquitto_port, M, S, "2.0.0", node_id="n0", x=0.0, y=0.0,
                     state_interval_s=1.0, instant_key="instantActions")
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="publisher")
    pub.connect("127.0.0.1", mosquitto_port)
    pub.loop_start()
    try:
        yield runner, watch, pub
    finally:
        pub.loop_stop()
        pub.disconnect()
        runner.stop()
        watch.close()


def refusals(n: int) -> Callable[[dict[str, Any]], bool]:
    """A state reporting exactly ``n`` validationErrors."""
    return lambda state: sum(e["errorType"] == "validationError" for e in state["errors"]) == n


@pytest.mark.mosquitto
def test_stray_and_malformed_messages_are_refused_and_the_connection_lives_on(
        running_agv: tuple[AgvRunner, StateWatch, mqtt.Client]) -> None:
    """Bad JSON, a state on instantActions, the wrong key, a stray topic and a raising model
    each become a validationError; a valid startPause afterwards is still performed."""
    runner, watch, pub = running_agv
    bad = [b"{not json", json.dumps({**pause("actions"), "actions": "x"}).encode(),
           json.dumps({"headerId": 1, "version": "2.0.0", "orderId": "o"}).encode(),
           json.dumps(pause("actions")).encode()]
    for n, payload in enumerate(bad, start=1):
        pub.publish(INSTANT_TOPIC, payload, qos=0).wait_for_publish(5)
        watch.wait_for(refusals(n))
    runner.receive(f"uagv/v2/{M}/{S}/visualization", b"{}")  # not a topic it reads
    watch.wait_for(refusals(len(bad) + 1))

    def broken(message: dict[str, Any], now: float) -> Any:
        raise KeyError("actions")  # the failure that once ended paho's network thread

    with runner.lock:
        runner.model.receive_instant_actions = broken  # type: ignore[method-assign]
    pub.publish(INSTANT_TOPIC, json.dumps(pause("instantActions")).encode()).wait_for_publish(5)
    watch.wait_for(refusals(len(bad) + 2))
    assert runner.faults and "KeyError" in runner.faults[0]
    with runner.lock:
        del runner.model.receive_instant_actions  # the class's own method again
    payload = encode_vda(pause("instantActions", header=9), "instantActions")
    pub.publish(INSTANT_TOPIC, payload, qos=0).wait_for_publish(5)
    paused = watch.wait_for(lambda s: s.get("paused") is True)
    assert {"actionId": "p9", "actionType": "startPause", "actionStatus": "FINISHED"} in \
        paused["actionStates"]
    refs = [topic_ref(e) for e in paused["errors"]]
    assert refs == ["instantActions"] * len(bad) + ["visualization", "instantActions"]
    assert len(runner.faults) == 1
