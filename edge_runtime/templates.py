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

__all__ = [
    "check_templates_dir", "load_template", "load_templates", "read_template_sources",
    "templates_from_sources",
]


def load_template(source: str | Path | Mapping[str, Any]) -> Template:
    """Validate a template from a mapping, a YAML/JSON text, or a ``.yaml``/``.json`` file.

    Any problem raises ``TemplateError`` naming the file (its full path) and the bad field's
    path.
    """
    if isinstance(source, Path):
        where = f"{source.absolute()}: "
        try:
            text = source.read_text()
        except OSError as exc:
            raise TemplateError(f"{where}cannot read: {exc.strerror}") from None
        return parse_template(text, where)
    return parse_template(source)


def load_templates(directory: str | Path) -> dict[str, Template]:
    """Every ``*.yaml``/``*.yml``/``*.json`` template of ``directory`` by name (newest
    version) and by ``name@version``; a problem names the file by its full path."""
    return templates_from_sources(read_template_sources(directory), directory)


def check_templates_dir(directory: str | Path) -> Path:
    """``directory`` as an absolute path, if it is a directory; else ``TemplateError``
    saying what it is (missing, or a file) — never zero templates without a word."""
    path = Path(directory).absolute()
    if path.is_dir():
        return path
    what = "is a file, not a directory" if path.exists() else "does not exist"
    raise TemplateError(f"templates directory {path} {what}")


def read_template_sources(directory: str | Path) -> dict[str, str]:
    """The text of every ``*.yaml``/``*.yml``/``*.json`` file of ``directory``, by file name
    (sorted): what ``templates_from_sources`` reads (an edge records it for a replay)."""
    sources: dict[str, str] = {}
    for path in sorted(check_templates_dir(directory).iterdir()):
        if path.suffix in (".yaml", ".yml", ".json"):
            try:
                sources[path.name] = path.read_text()
            except OSError as exc:
                raise TemplateError(f"{path}: cannot read: {exc.strerror}") from None
    return sources


def templates_from_sources(sources: Mapping[str, str],
                           directory: str | Path | None = None) -> dict[str, Template]:
    """The templates of source documents by file name, as ``load_templates`` gives them: by
    name (newest version) and by ``name@version``; a problem names the file (under
    ``directory``, as a full path, when it is given)."""
    base = Path(directory).absolute() if directory is not None else None
    found: dict[str, Template] = {}
    for name in sorted(sources):
        where = f"{base / name if base is not None else name}: "
        template = parse_template(sources[name], where)
        found[template.key] = template
        best = found.get(template.name)
        if best is None or best.version < template.version:
            found[template.name] = template
    return found
