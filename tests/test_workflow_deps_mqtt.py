"""A typed dependency between workflows, end to end: a real ``fleetflow edge`` subprocess on
real brokers, simulated native agents; a data_flow dependency releases its target with the
source's output, and the target completes."""

from __future__ import annotations

from pathlib import Path

from test_edge_e2e import Edge, Watch, _completed, _fleet, _online
from test_edge_e2e import broker_port as broker_port  # the fixture: both brokers

TOTE_TEMPLATE = """\
name: e2e_tote
steps:
  - id: fetch
    kind: robot
    capabilities: [lift]
    location: p1
    estimated_duration_s: 1
    outputs: [tote_id]
  - id: deliver
    kind: robot
    capabilities: [lift]
    location: pack
    estimated_duration_s: 1
    after: [fetch]
"""


def test_data_flow_dependency_releases_and_target_completes(broker_port: int,
                                                           tmp_path: Path) -> None:
    """The target waits in pending, is released when the source's step reports the named
    output (merged into its data), and completes."""
    w = Watch(broker_port)
    edge = Edge(broker_port, tmp_path)
    (edge.templates / "e2e_tote.yaml").write_text(TOTE_TEMPLATE)
    edge.start()
    try:
        w.wait_for(_online, 60)
        with _fleet(broker_port):
            w.command_until_replied("create_workflow", template="e2e_tote", workflow_id="src")
            w.command_until_replied("create_workflow", template="e2e_pick", workflow_id="t",
                                    dependencies=[{"depends_on": "src", "type": "data_flow",
                                                   "conditions": {"outputs": {
                                                       "tote": "fetch.tote_id"}}}])
            w.wait_for(lambda w: _completed(w, "t") and _completed(w, "src"), 90)
    finally:
        edge.close()
        w.close()
    of_t = [e for e in w.events if e.workflow_id == "t"]
    kinds = [e.kind for e in of_t]
    assert kinds.index("dependency_resolved") < kinds.index("workflow_started")
    [resolved] = [e for e in of_t if e.kind == "dependency_resolved"]
    assert resolved.data["verdict"] == "release"
    assert resolved.data["data"] == {"tote": "tote_id-src-fetch-1"}
    fetched = next(e.seq for e in w.events
                   if e.kind == "step_done" and e.workflow_id == "src"
                   and e.data["step"] == "fetch")
    assert fetched < resolved.seq  # released by the output, not by the source's end
