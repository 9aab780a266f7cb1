"""The chaos run's end checks find what they look for: on a real edge and hub, a clean run
counts nothing wrong; an event published but not in the log, one seq published twice, an
acknowledged workflow never created and a workflow the hub never saw are each counted."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from hub_stack import ROOT, Stack, create, run_stack, wait_for
from paho.mqtt.enums import CallbackAPIVersion

from bench.chaos_checks import EdgeSetup, RunCheck, check_run
from edge_runtime.core import Event
from edge_runtime.store import EventStore
from topics import HubCommand, encode

pytestmark = [pytest.mark.mosquitto, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[Stack]:
    """One edge (``fa``) with three workflows, stopped gracefully once the hub caught up;
    the hub still running."""
    tmp = tmp_path_factory.mktemp("checks")
    for s in run_stack(tmp, mosquitto_bin, facilities=("fa",)):
        with s.client() as api:
            for _ in range(3):
                create(api)

            def caught_up() -> bool:
                fa = api.get("/api/v1/facilities").json()[0]
                return bool(fa["edge_seq"] >= 3 and fa["applied_seq"] == fa["edge_seq"])

            wait_for(caught_up, 30, "the hub to apply the edge's events")
        s.stop("fa")
        yield s


def _run(s: Stack, observed: list[Event], created: set[str]) -> RunCheck:
    edge = EdgeSetup("fa", s.data.parent / "edge-fa", s.data.parent / "templates",
                     ROOT / "maps" / "demo.yaml")
    return check_run([edge], s.url, s.tokens["viewer"], {"fa": observed}, {"fa": created})


def test_a_clean_run_counts_nothing_wrong(stopped: Stack) -> None:
    """Every published event in the log, the log replays, the hub agrees: all zeros."""
    log = _store_events(stopped)
    created = {e.workflow_id for e in log if e.kind == "workflow_created" and e.workflow_id}
    check = _run(stopped, log, created)
    assert check.problems == []
    figures = check.figures()
    assert figures["events_lost"] == figures["events_duplicated"] == 0
    assert figures["hub_edge_mismatches"] == figures["replay_mismatches"] == 0
    # Nobody can lift: each waits, and says why.
    assert figures["workflows_total"] == figures["workflows_waiting_operator"] == 3
    assert all("lift" in why for why in check.waiting), check.waiting


def test_events_not_in_the_log_and_seqs_published_twice_are_counted(stopped: Stack) -> None:
    """A published event the log holds otherwise is lost; a seq seen twice is duplicated."""
    log = _store_events(stopped)
    changed = dataclasses.replace(log[0], data={**log[0].data, "forged": True})
    check = _run(stopped, [*log, changed], set())
    assert check.events_lost == 1 and check.events_duplicated == 1, check.problems


def test_an_acknowledged_create_without_its_workflow_is_lost(stopped: Stack) -> None:
    """A workflow the edge acknowledged but never created counts as lost."""
    check = _run(stopped, [], {"never-made"})
    assert check.events_lost == 1
    assert "never-made was acknowledged but never created" in check.problems[0]


def test_a_workflow_the_hub_never_saw_is_a_mismatch(tmp_path: Path, mosquitto_bin: str) -> None:
    """A workflow made while the hub was down, the edge stopped before the hub came back:
    the hub lacks it and applied fewer events than the log holds — both counted."""
    for s in run_stack(tmp_path, mosquitto_bin, facilities=("fa",)):
        _hide_one_from_the_hub(s)
        check = _run(s, [], {"unseen"})
        assert check.hub_edge_mismatches == 2, check.problems  # the workflow, the seqs
        assert any("unseen: not in the hub's view" in p for p in check.problems)
        assert check.events_lost > 0 and check.replay_mismatches == 0


def _hide_one_from_the_hub(s: Stack) -> None:
    """Hub down, a workflow created through MQTT, the edge stopped, the hub up again."""
    s.stop("hub")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="checks-test")
    client.connect("127.0.0.1", s.mqtt_port)
    client.loop_start()
    cmd = HubCommand(command_id="c-unseen", action="create_workflow",
                     args={"template": "api_pick", "workflow_id": "unseen"})
    client.publish("fleetflow/v1/fa/edge/cmd", encode(cmd), qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()
    wait_for(_has("unseen", s), 20, "the edge to create it")
    s.stop("fa")
    s.start("hub")
    wait_for(lambda: httpx.get(f"{s.url}/health", timeout=2).status_code == 200, 30,
             "the hub to serve again")


def _has(workflow_id: str, s: Stack) -> Callable[[], bool]:
    """Whether the edge's log holds ``workflow_id``'s creation (to poll)."""
    return lambda: any(e.workflow_id == workflow_id for e in _store_events(s))


def _store_events(s: Stack) -> list[Event]:
    """The edge's log, read beside the running edge (read-only)."""
    path = s.data.parent / "edge-fa" / "store"
    if not path.exists():
        return []
    with EventStore(path, None, read_only=True) as store:
        return list(store.read())
