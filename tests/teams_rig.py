"""Shared helpers of the coalition and ``leader_follower`` tests: templates, members'
reports, and the replay/restore check."""

from __future__ import annotations

from typing import Any

from edge_runtime.core import Append, Core, CoreConfig, Effect, Publish, Template
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet
from topics import Message, StepDone, StepFailed, StepProgress, SyncArrival


def team_template(name: str = "carry", coordination: str = "direct", *,
                  team: list[dict[str, Any]] | None = None, **step: Any) -> Template:
    """One coalition step ``carry`` (two robots by default) at node ``dock``."""
    return load_template({"name": name, "coordination": coordination, "steps": [{
        "id": "carry", "kind": "robot", "location": "dock",
        "team": team or [{"role": "front"}, {"role": "back"}], **step}]})


ONE = load_template({"name": "one", "steps": [{"id": "s", "kind": "robot"}]})


def fleet(templates: dict[str, Template], agents: list[tuple[str, str]], *,
          config: CoreConfig | None = None) -> ScriptedFleet:
    """A scripted fleet with ``agents`` (id, kind) announced, no capabilities."""
    fl = ScriptedFleet(Core("f1", templates, config=config or CoreConfig()))
    for aid, kind in agents:
        fl.agent(aid, kind, [])  # type: ignore[arg-type]
    return fl


def kinds(fx: list[Effect]) -> list[str]:
    """The kinds of the events among ``fx``."""
    return [e.event.kind for e in fx if isinstance(e, Append)]


def events(fx: list[Effect], kind: str) -> list[dict[str, Any]]:
    """The data of the ``kind`` events among ``fx``."""
    return [e.event.data for e in fx if isinstance(e, Append) and e.event.kind == kind]


def sent(fx: list[Effect], kind: type[Message]) -> list[tuple[str, Any]]:
    """(agent, message) of every ``kind`` command among ``fx``."""
    return [(e.topic.split("/")[4], e.message) for e in fx
            if isinstance(e, Publish) and isinstance(e.message, kind)]


def _common(fl: ScriptedFleet, wf: str, agent: str, step: str) -> dict[str, Any]:
    view = fl.core.workflow(wf)
    assert view is not None
    fl._n += 1
    return {"agent_id": agent, "workflow_id": wf, "step_id": step,
            "attempt": view.steps[step].attempt, "ts": fl.now, "event_id": f"t{fl._n}"}


def arrive(fl: ScriptedFleet, wf: str, agent: str, step: str = "carry") -> list[Effect]:
    """Member ``agent`` reached the coalition step."""
    return fl.feed(SyncArrival(**_common(fl, wf, agent, step)))


def done(fl: ScriptedFleet, wf: str, agent: str, step: str = "carry",
         **outputs: Any) -> list[Effect]:
    """Member ``agent`` did its part."""
    return fl.feed(StepDone(outputs=outputs, **_common(fl, wf, agent, step)))


def fail(fl: ScriptedFleet, wf: str, agent: str, step: str = "carry") -> list[Effect]:
    """Member ``agent`` failed its part (retryable)."""
    return fl.feed(StepFailed(error_type="jammed", **_common(fl, wf, agent, step)))


def progress(fl: ScriptedFleet, wf: str, agent: str, value: float,
             step: str = "carry") -> list[Effect]:
    """Member ``agent`` reports progress."""
    return fl.feed(StepProgress(progress=value, **_common(fl, wf, agent, step)))


def task(fl: ScriptedFleet, agent: str) -> tuple[str, str] | None:
    """What ``agent`` holds, as the core sees it."""
    return fl.core.state.agents[agent].task


def assert_replays(fl: ScriptedFleet, templates: dict[str, Template],
                   config: CoreConfig | None = None) -> None:
    """Every event applied to a fresh core, and a restore of the snapshot, give the live
    core's state byte for byte."""
    config = config or CoreConfig()
    live = fl.core.snapshot()
    replayed = Core("f1", templates, config=config)
    for effect in fl.effects:
        if isinstance(effect, Append):
            replayed.apply(effect.event)
    assert replayed.snapshot() == live
    assert Core.restore(live, "f1", templates, config).snapshot() == live
