"""What a simulated agent's step takes and yields: its timeline, injected faults, outputs.

Pure functions of the ``AgentSpec``, the ``Assign`` and a seed, used by the behaviour
(``agents_sim._native_behaviour``): ``plan_step`` lays out when the step's events fall due,
``pick_failure`` applies the spec's ``Failure`` rules, ``step_outputs`` builds what
``step_done`` reports, and ``ai_outputs`` is an AI agent's seeded verdict.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

from agents_sim._native_spec import DEFAULT_DURATION_S, AgentSpec, Failure
from topics import Assign

__all__ = ["Step", "ai_outputs", "digest", "pick_failure", "plan_step", "step_outputs"]


@dataclass(slots=True)
class Step:
    """The step an agent works on, as a timeline of events still to send."""

    assign: Assign
    plan: list[tuple[float, str]]
    """(due time, what) pairs still ahead, in time order; what ∈ started/progress/done/…."""
    failure: Failure | None = None
    paused_at: float | None = None


def digest(*parts: object) -> int:
    """A stable 64-bit hash of ``parts`` (seeds per-step randomness reproducibly)."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def ai_outputs(seed: int, agent_id: str, workflow_id: str, step_id: str, attempt: int
               ) -> dict[str, Any]:
    """Deterministic outputs of an AI step: ``{"defect": bool, "score": float}``.

    The same seed, agent, workflow, step and attempt always give the same answer.
    >>> ai_outputs(1, "ai-1", "wf", "inspect", 1) == ai_outputs(1, "ai-1", "wf", "inspect", 1)
    True
    """
    rng = random.Random(digest(seed, agent_id, workflow_id, step_id, attempt))
    score = round(rng.uniform(0.5, 1.0), 3)
    return {"defect": score < 0.6, "score": score}


def plan_step(spec: AgentSpec, cmd: Assign, now: float, failure: Failure | None) -> Step:
    """The step of ``cmd`` starting ``now``: started, evenly spread progress, done — or cut
    short where an injected ``failure`` strikes."""
    raw = cmd.params.get("duration_s")
    base = float(raw) if isinstance(raw, int | float) and raw >= 0 else (
        DEFAULT_DURATION_S[spec.kind]
    )
    duration = base / spec.speed
    plan: list[tuple[float, str]] = [(now, "started")]
    n = spec.progress_steps
    for i in range(1, n + 1):
        plan.append((now + duration * i / (n + 1), "progress"))
    plan.append((now + duration, "done"))
    if failure is not None:
        cut = now + duration * failure.at
        plan = [p for p in plan if p[0] < cut] + [(cut, failure.mode)]
    return Step(cmd, plan, failure=failure)


def pick_failure(spec: AgentSpec, cmd: Assign, hits: dict[str, int]) -> Failure | None:
    """The first of the spec's ``Failure`` rules that hits this attempt; ``hits`` counts
    the attempts each rule hit so far (for ``Failure.times``) and is updated."""
    for failure in spec.failures:
        if failure.match not in (cmd.step_id, cmd.action):
            continue
        key = f"{cmd.workflow_id}/{cmd.step_id}/{failure.match}"
        count = hits.get(key, 0)
        if failure.times and count >= failure.times:
            continue
        hits[key] = count + 1
        return failure
    return None


def step_outputs(spec: AgentSpec, a: Assign) -> dict[str, Any]:
    """What ``step_done`` reports: an AI's verdict, or who did it and where; plus a
    synthetic value for every output the ``Assign`` says the step must produce."""
    named = {n: f"{n}-{a.workflow_id}-{a.step_id}-{a.attempt}"[:256] for n in a.outputs}
    if spec.kind == "ai":
        # The model's typed verdict wins over a synthetic value of the same name.
        return named | ai_outputs(spec.seed, spec.agent_id, a.workflow_id, a.step_id, a.attempt)
    out: dict[str, Any] = {"agent": spec.agent_id}
    if a.location is not None:
        out["location"] = a.location
    return out | named
