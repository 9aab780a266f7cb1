"""A "create from a template" form generated from the template's parameters: each variable
of its ``data`` (the defaults a workflow's own ``data`` overrides) becomes an input of the
default's type, and the answers become the ``POST /workflows`` body. No Streamlit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Param", "create_body", "params_of"]

Kind = Literal["bool", "int", "float", "text", "json"]


@dataclass(frozen=True, slots=True)
class Param:
    """One input of the form: a template variable, the input kind and its default."""

    name: str
    kind: Kind
    default: Any


def params_of(template: dict[str, Any]) -> list[Param]:
    """The template's parameters (its ``data`` variables) in their order, each typed by its
    default: a checkbox, a whole or a decimal number, a text, or JSON for lists, objects
    and ``null``."""
    out = []
    for name, default in (template.get("data") or {}).items():
        kind: Kind
        if isinstance(default, bool):
            kind = "bool"
        elif isinstance(default, int):
            kind = "int"
        elif isinstance(default, float):
            kind = "float"
        elif isinstance(default, str):
            kind = "text"
        else:
            kind, default = "json", json.dumps(default)
        out.append(Param(str(name), kind, default))
    return out


def _parse(p: Param, value: Any) -> Any:
    if p.kind != "json":
        return value
    try:
        return json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p.name}: not JSON ({exc.msg})") from None


def create_body(template: dict[str, Any], facility: str, values: dict[str, Any], *,
                priority: int = 0, workflow_id: str = "", labels: str = "",
                reason: str = "") -> dict[str, Any]:
    """The ``POST /workflows`` body: only variables that differ from their default go into
    ``data``; ``labels`` is ``k=v, k2=v2``. ``ValueError`` (a readable sentence) for bad
    JSON or a label that is not ``key=value``."""
    data: dict[str, Any] = {}
    for p in params_of(template):
        if p.name in values:
            value = _parse(p, values[p.name])
            if value != _parse(p, p.default):
                data[p.name] = value
    body: dict[str, Any] = {"facility": facility, "template": template["name"],
                            "priority": int(priority)}
    if data:
        body["data"] = data
    if workflow_id.strip():
        body["workflow_id"] = workflow_id.strip()
    tags = {}
    for item in filter(None, (x.strip() for x in labels.split(","))):
        k, eq, v = item.partition("=")
        if not (k.strip() and eq and v.strip()):
            raise ValueError(f"a label is key=value, not {item!r}")
        tags[k.strip()] = v.strip()
    if tags:
        body["labels"] = tags
    if reason.strip():
        body["reason"] = reason.strip()
    return body
