"""Workflow templates: loading, validation errors with field paths, the shipped templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_runtime.core import TemplateError
from edge_runtime.templates import load_template, load_templates

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def _doc(*steps: dict[str, object], **top: object) -> dict[str, object]:
    return {"name": "t", "version": 1, "steps": list(steps), **top}


def test_shipped_templates_load() -> None:
    """The three shipped templates validate and are found by name and name@version."""
    found = load_templates(TEMPLATES)
    for name in ("pick_and_deliver", "robot_person_handover", "ai_inspection"):
        assert found[name] is found[f"{name}@1"]
    kinds = {s.kind for t in found.values() for s in t.steps}
    assert kinds == {"robot", "human", "ai", "sync", "decision", "wait"}


def test_bad_field_is_named_by_path() -> None:
    """A bad nested field is reported with its path."""
    doc = _doc({"id": "a", "kind": "robot"},
               {"id": "b", "kind": "robot", "retry": {"max_attempts": 0}})
    with pytest.raises(TemplateError, match=r"steps\[1\]\.retry\.max_attempts: .*greater"):
        load_template(doc)


def test_unknown_field_refused() -> None:
    """An unknown field is refused, naming it."""
    with pytest.raises(TemplateError, match=r"steps\[0\]\.colour"):
        load_template(_doc({"id": "a", "kind": "robot", "colour": "red"}))


def test_unknown_step_reference_refused() -> None:
    """``after`` naming a step that does not exist is refused."""
    with pytest.raises(TemplateError, match=r"steps\[0\]\.after: unknown step 'zz'"):
        load_template(_doc({"id": "a", "kind": "robot", "after": ["zz"]}))


def test_step_cycle_named() -> None:
    """A dependency cycle among steps is refused and named."""
    doc = _doc({"id": "a", "kind": "robot", "after": ["c"]},
               {"id": "b", "kind": "robot", "after": ["a"]},
               {"id": "c", "kind": "robot", "after": ["b"]})
    with pytest.raises(TemplateError, match="cycle a -> b -> c -> a"):
        load_template(doc)


def test_bad_cel_refused_at_load() -> None:
    """A condition that does not compile is refused when the template loads."""
    doc = _doc({"id": "d", "kind": "decision", "condition": "data.x >", "then": []})
    with pytest.raises(TemplateError, match=r"steps\[0\]\.condition: CEL"):
        load_template(doc)


def test_kind_specific_fields_checked() -> None:
    """Wait steps need a duration or signal; sync steps need agent participants."""
    with pytest.raises(TemplateError, match="duration_s or a signal"):
        load_template(_doc({"id": "w", "kind": "wait"}))
    doc = _doc({"id": "a", "kind": "robot"}, {"id": "w", "kind": "wait", "duration_s": 1},
               {"id": "s", "kind": "sync", "participants": ["a", "w"]})
    with pytest.raises(TemplateError, match="'w' is not done by an agent"):
        load_template(doc)


def test_yaml_text_and_json_text_load() -> None:
    """Templates load from YAML text and from JSON text alike."""
    yaml_text = "name: y\nversion: 2\nsteps:\n  - {id: a, kind: ai}\n"
    json_text = '{"name": "j", "steps": [{"id": "a", "kind": "human"}]}'
    assert load_template(yaml_text).key == "y@2"
    assert load_template(json_text).step("a").kind == "human"


def test_newest_version_wins_by_name(tmp_path: Path) -> None:
    """Loading a directory maps a name to its newest version."""
    for v in (1, 3, 2):
        (tmp_path / f"t{v}.yaml").write_text(f"name: t\nversion: {v}\nsteps: [{{id: a, kind: ai}}]")
    found = load_templates(tmp_path)
    assert found["t"].version == 3 and found["t@1"].version == 1
