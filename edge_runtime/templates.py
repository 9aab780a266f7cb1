"""Workflow templates from files: one file, or every template of a directory.

The core validates template *documents* (``edge_runtime.core.parse_template``); reading
files is I/O, so it lives here, outside the sans-IO core.

>>> from edge_runtime.templates import load_template
>>> load_template("name: demo\\nversion: 1\\nsteps: [{id: s, kind: wait, duration_s: 1}]").key
'demo@1'
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge_runtime.core import Template, TemplateError, parse_template

__all__ = ["load_template", "load_templates", "read_template_sources", "templates_from_sources"]


def load_template(source: str | Path | Mapping[str, Any]) -> Template:
    """Validate a template from a mapping, a YAML/JSON text, or a ``.yaml``/``.json`` file.

    Any problem raises ``TemplateError`` naming the file and the bad field's path.
    """
    if isinstance(source, Path):
        where = f"{source.name}: "
        try:
            text = source.read_text()
        except OSError as exc:
            raise TemplateError(f"{where}cannot read: {exc.strerror}") from None
        return parse_template(text, where)
    return parse_template(source)


def load_templates(directory: str | Path) -> dict[str, Template]:
    """Every ``*.yaml``/``*.yml``/``*.json`` template of ``directory`` by name (newest
    version) and by ``name@version``."""
    return templates_from_sources(read_template_sources(directory))


def read_template_sources(directory: str | Path) -> dict[str, str]:
    """The text of every ``*.yaml``/``*.yml``/``*.json`` file of ``directory``, by file name
    (sorted): what ``templates_from_sources`` reads (an edge records it for a replay)."""
    sources: dict[str, str] = {}
    for path in sorted(Path(directory).iterdir()):
        if path.suffix in (".yaml", ".yml", ".json"):
            try:
                sources[path.name] = path.read_text()
            except OSError as exc:
                raise TemplateError(f"{path.name}: cannot read: {exc.strerror}") from None
    return sources


def templates_from_sources(sources: Mapping[str, str]) -> dict[str, Template]:
    """The templates of source documents by file name, as ``load_templates`` gives them: by
    name (newest version) and by ``name@version``; a problem names the file."""
    found: dict[str, Template] = {}
    for name in sorted(sources):
        template = parse_template(sources[name], f"{name}: ")
        found[template.key] = template
        best = found.get(template.name)
        if best is None or best.version < template.version:
            found[template.name] = template
    return found
