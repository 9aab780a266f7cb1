"""Fuzz harness over a real edge ``Core``'s input handling.

The input's bytes are the choices of ``fuzz/core_script.py``: which agent reports what
about which step, which hub command with which arguments, which timer fires, how much time
passes. On each input the core must give effects or a ``CoreError`` that changed nothing;
the whole script re-run on a fresh core must give the same event bytes (determinism).

    python fuzz/core_inputs.py -max_total_time=30
    python fuzz/core_inputs.py -max_total_time=3600 -max_len=4096 corpus/
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fuzz.driver import BytePicker, instrumented, run

with instrumented():
    from fuzz.core_script import CONFIGS, replay_script, run_script

MAX_STEPS = 200
"""Inputs per script at most (each takes about four bytes of choices)."""


def check(data: bytes) -> None:
    """One script: ``data[0]`` picks the engine set-up, the rest the inputs."""
    if not data:
        return
    config = CONFIGS[data[0] % len(CONFIGS)]
    steps = max(1, min(MAX_STEPS, len(data) // 4))
    script = run_script(BytePicker(data[1:]), steps, config)
    assert replay_script(script, config) == script.events, "the same inputs, other events"


def seeds() -> list[bytes]:
    """A few byte strings that make long scripts on each set-up."""
    return [bytes([c]) + bytes(range(256)) * 2 for c in range(len(CONFIGS))] + [
        bytes([0]) + bytes((i * 37) % 256 for i in range(800))]


if __name__ == "__main__":
    run(check, seeds())
