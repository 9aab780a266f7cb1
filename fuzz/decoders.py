"""Fuzz harness over every wire decoder: the native msgpack ones and VDA 5050 JSON.

The first byte of an input picks the decoder, the rest is the payload. A decoder must
return a message or raise ``ProtocolError``; what it returns must encode again and decode
to an equal value (no accepted message that cannot be sent on).

    python fuzz/decoders.py -max_total_time=30          # atheris, or the fallback driver
    python fuzz/decoders.py -max_total_time=3600 corpus/ # longer, keeping a corpus
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fuzz.driver import instrumented, run

with instrumented():
    from topics import (
        VDA_KINDS,
        AgentConn,
        AgentState,
        Assign,
        Bid,
        HubCommand,
        Message,
        ProtocolError,
        StepDone,
        decode,
        decode_agent_command,
        decode_agent_conn,
        decode_agent_event,
        decode_agent_state,
        decode_edge_event,
        decode_edge_status,
        decode_error_report,
        decode_hub_command,
        decode_vda,
        decode_vda_links,
        encode,
        encode_vda,
    )

NATIVE: list[Callable[[bytes], Message]] = [
    decode_agent_state, decode_agent_event, decode_agent_conn, decode_agent_command,
    decode_hub_command, decode_edge_event, decode_edge_status, decode_error_report,
    decode_vda_links,
]
"""The native decoders, one per inbound topic kind."""
TARGETS = len(NATIVE) + len(VDA_KINDS)


def check(data: bytes) -> None:
    """One input: ``data[0]`` picks the decoder, ``data[1:]`` is the payload."""
    if not data:
        return
    which, payload = data[0] % TARGETS, data[1:]
    if which < len(NATIVE):
        try:
            message = NATIVE[which](payload)
        except ProtocolError:
            return
        again = decode(encode(message), type(message))
        assert again == message, f"{message!r} does not round-trip"
        return
    kind = VDA_KINDS[which - len(NATIVE)]
    try:
        vda: dict[str, Any] = decode_vda(payload, kind)
    except ProtocolError:
        return
    assert decode_vda(encode_vda(vda, kind), kind) == vda, f"{kind} does not round-trip"


def seeds() -> list[bytes]:
    """Valid payloads to start from: native messages and the spec-shaped VDA examples."""
    native = [
        AgentState(agent_id="r1", ts=1.0, battery=50.0, node="dock"),
        StepDone(event_id="e1", agent_id="r1", ts=2.0, workflow_id="w1", step_id="s1",
                 outputs={"tote": [1, 2.5, {"ok": True}]}),
        AgentConn(agent_id="r1", online=True, capabilities=["pick"]),
        Assign(command_id="c1", workflow_id="w1", step_id="s1", kind="robot"),
        HubCommand(command_id="c2", action="create_workflow",
                   args={"template": "t", "workflow_id": "w1"}),
        Bid(event_id="e2", agent_id="r1", ts=1.0, cfp_id="c", cost=2.0),
    ]
    decoders = [0, 1, 2, 3, 4, 1]
    out = [bytes([d]) + encode(m) for d, m in zip(decoders, native, strict=True)]
    data = Path(__file__).resolve().parent.parent / "tests" / "data" / "vda5050"
    for i, kind in enumerate(VDA_KINDS):
        example = data / f"{kind}.json"
        if example.exists():
            text = json.dumps(json.loads(example.read_text("utf-8"))).encode()
            out.append(bytes([len(NATIVE) + i]) + text)
    return out


if __name__ == "__main__":
    run(check, seeds())
