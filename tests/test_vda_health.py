"""The VDA 5050 link health (``VdaHealth``): a real master and test AGV (``tests/vda_rig.py``),
every message through the schemas, and the ``VdaLinks`` made of them."""

from __future__ import annotations

from typing import Any

from vda_rig import DEMO, T0, F, M, Rig, S, wire

from agents_sim.vda_agv import AgvModel
from edge_runtime.vda5050 import VdaBridge, VdaHealth, VdaMaster, VdaTranslation
from topics import (
    DEFAULT_LIMITS,
    MAX_LINKS,
    StepFailed,
    VdaLink,
    VdaLinks,
    decode_vda_links,
)


def link(health: VdaHealth, master: VdaMaster, now: float, serial: str = S) -> VdaLink:
    """The one link of AGV ``serial`` at ``now``."""
    links, _ = health.links(master, now)
    (found,) = [x for x in links.links if x.serial_number == serial]
    return found


def test_an_unacknowledged_order_ages_until_a_state_reports_it() -> None:
    """An order lost on the way shows its age from its first sending, resends or not; the
    AGV's state reporting it clears it."""
    rig, health = Rig(), VdaHealth(F)
    master = rig.bridge.master
    assert link(health, master, rig.now).order_unacked_s is None
    rig.deliver = False
    rig.assign()
    sent_at = rig.now
    first = link(health, master, sent_at + 1)
    assert first.order_unacked_s == 1.0 and first.order_id is not None
    assert first.agent_id == S and first.connection == "ONLINE" and first.state_age_s is not None
    rig.run(7)  # the master resends it on a state after 5 s: lost again
    assert len([k for k, _ in rig.sent if k == "order"]) >= 2
    assert link(health, master, rig.now).order_unacked_s == rig.now - sent_at
    rig.deliver = True
    rig.run_until(lambda r: r.bridge.master.sessions[(M, S)].active.acked_update >= 0)  # type: ignore[union-attr]
    acked = link(health, master, rig.now)
    assert acked.order_unacked_s is None and acked.order_id == first.order_id


def test_an_unanswered_instant_action_counts_until_a_state_shows_it() -> None:
    """An instant action no state has shown counts, with the age of the oldest."""
    rig, health = Rig(), VdaHealth(F)
    master = rig.bridge.master
    rig.deliver = False
    _, msg = master.instant_action(M, S, "stateRequest", rig.now)
    rig.take(VdaTranslation(messages=[msg]))  # lost on the way
    waiting = link(health, master, rig.now + 2)
    assert (waiting.instants_unacked, waiting.oldest_instant_s) == (1, 2.0)
    rig.deliver = True
    rig.run(7)  # resent after 5 s; the AGV's state lists it
    done = link(health, master, rig.now)
    assert (done.instants_unacked, done.oldest_instant_s) == (0, None)


def test_a_rejected_order_counts_as_a_rejection_and_is_no_record() -> None:
    """An AGV refusing an order (noRouteError: it is not where the order starts) counts once;
    the counter is not among the durable records."""
    rig, health = Rig(), VdaHealth(F)
    master = rig.bridge.master
    rig.agv.x = 50.0  # pushed off its node: the order's first node is out of reach
    rig.assign()
    failed = [i for i in rig.inputs if isinstance(i, StepFailed)]
    assert [f.error_type for f in failed] == ["noRouteError"]
    after = link(health, master, rig.now)
    assert after.rejections == 1 and after.order_id is None
    assert [e.error_type for e in after.errors] == ["noRouteError"]
    rig.run(3)  # the standing warning is not counted again
    assert link(health, master, rig.now).rejections == 1
    again = VdaMaster(graph=DEMO.graph)
    again.load(master.changed().items(), rig.now)
    assert again.rejections == {} and link(health, again, rig.now).rejections == 0


def test_errors_are_listed_first_eight_and_cut() -> None:
    """The errors of the last state: the first 8, descriptions cut to 256 characters."""
    rig, health = Rig(), VdaHealth(F)
    rig.agv.errors.extend({"errorType": f"sensor{i}", "errorLevel": "FATAL" if i else "WARNING",
                           "errorDescription": "d" * 300} for i in range(10))
    rig.feed(rig.agv.state(rig.now))
    errors = link(health, rig.bridge.master, rig.now).errors
    assert [e.error_type for e in errors] == [f"sensor{i}" for i in range(8)]
    assert [e.level for e in errors[:2]] == ["WARNING", "FATAL"]
    assert {len(e.description) for e in errors} == {256}


def fleet(n: int, errors: int = 0, lost: tuple[int, ...] = ()) -> VdaBridge:
    """A bridge that heard ``n`` AGVs come online and report, each with ``errors`` errors of
    300 characters; the AGVs numbered in ``lost`` went OFFLINE."""
    bridge = VdaBridge(F, VdaMaster(graph=DEMO.graph))
    for i in range(n):
        serial = f"agv{i:03d}"
        agv = AgvModel(M, serial, node_id="dock", x=0.0, y=0.0, map_id="demo_floor", now=T0)
        agv.errors.extend({"errorType": f"e{k}", "errorLevel": "WARNING",
                           "errorDescription": "x" * 300} for k in range(errors))
        outs: list[tuple[str, dict[str, Any]]] = [agv.connection("ONLINE", T0), agv.state(T0)]
        if i in lost:
            outs.append(agv.connection("OFFLINE", T0))
        for kind, message in outs:
            bridge.inbound(M, serial, kind, wire(message, kind), T0)
    return bridge


def test_more_agvs_than_fit_keep_those_in_need_and_count_the_rest() -> None:
    """Past MAX_LINKS, lost AGVs and those with refused messages are kept, the rest counted
    in left_out; links stay sorted by agent id."""
    bridge, health = fleet(MAX_LINKS + 5, lost=(101, 102)), VdaHealth(F)
    health.refused(M, "agv104")
    health.refused("other", "stranger")  # refused before any session: still listed
    links, payload = health.links(bridge.master, T0 + 1)
    assert len(links.links) == MAX_LINKS and links.left_out == 6
    ids = [x.agent_id for x in links.links]
    assert ids == sorted(ids)
    kept = {x.agent_id: x for x in links.links}
    assert kept["agv101"].lost and kept["agv102"].lost and kept["agv104"].schema_errors == 1
    assert kept["stranger"].connection == "UNKNOWN" and kept["stranger"].schema_errors == 1
    assert decode_vda_links(payload) == links


def test_the_encoding_stays_under_the_payload_limit() -> None:
    """A hundred AGVs with eight long errors each do not fit: the message is cut to the
    limit, the rest counted, and it decodes as it was made."""
    bridge, health = fleet(MAX_LINKS, errors=8, lost=(7,)), VdaHealth(F)
    links, payload = health.links(bridge.master, T0 + 1)
    assert len(payload) <= DEFAULT_LIMITS.max_payload_bytes
    assert 0 < len(links.links) < MAX_LINKS
    assert links.left_out == MAX_LINKS - len(links.links)
    assert "agv007" in {x.agent_id for x in links.links}  # the lost one first
    assert all(len(x.errors) == 8 for x in links.links)
    assert decode_vda_links(payload) == links and isinstance(links, VdaLinks)
