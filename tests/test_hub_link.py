"""The hub's MQTT link on a broker that enforces users and ACLs: the ``hub`` role reads
every facility's edge topics and writes their ``edge/cmd``, and nothing more is needed."""

from __future__ import annotations

from pathlib import Path

import pytest
from hub_rig import EdgeProc, hub_config, running_hub, wait_until, write_templates

from broker import BrokerProcess, Identity, PasswordFile, free_port
from cloud_hub import Hub

USERS = [Identity("edge-a", "edge", facility="hall-a"),
         Identity("edge-b", "edge", facility="hall-b"), Identity("hub", "hub")]


def test_hub_role_is_enough(tmp_path: Path) -> None:
    """With ACLs enforced, the hub hears two facilities and its commands are applied."""
    pf = PasswordFile(tmp_path / "passwd")
    for ident in USERS:
        pf.add(ident, f"pw-{ident.name}", iterations=50)
    port = free_port()
    templates = write_templates(tmp_path)
    with BrokerProcess("127.0.0.1", port, pf.path):
        edges = [EdgeProc(f, port, tmp_path, templates, "--username", f"edge-{f[-1]}",
                          "--password", f"pw-edge-{f[-1]}").start()
                 for f in ("hall-a", "hall-b")]
        try:
            config = hub_config(tmp_path, port, templates)
            config.username, config.password = "hub", "pw-hub"
            with running_hub(config) as hub:
                wait_until(lambda: {f.id for f in hub.facilities() if f.online}
                           == {"hall-a", "hall-b"}, 60)
                for f in ("hall-a", "hall-b"):
                    fate = hub.command(f, "create_workflow",
                                       {"template": "hub_pick", "workflow_id": f"w-{f}"},
                                       timeout_s=30)
                    assert fate.state == "applied"
                assert hub.workflows().count == 2
        finally:
            for edge in edges:
                edge.close()


def test_wrong_password_never_connects(tmp_path: Path) -> None:
    """A refused login leaves the hub disconnected (it keeps retrying), never half up."""
    pf = PasswordFile(tmp_path / "passwd")
    pf.add(Identity("hub", "hub"), "pw-hub", iterations=50)
    port = free_port()
    with BrokerProcess("127.0.0.1", port, pf.path):
        config = hub_config(tmp_path, port, write_templates(tmp_path))
        config.username, config.password = "hub", "wrong"
        with Hub(config) as hub:
            with pytest.raises(AssertionError):
                wait_until(lambda: hub.connected, 3)
            assert hub.facilities() == []
