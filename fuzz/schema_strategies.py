"""Hypothesis strategies from JSON schemas: valid VDA 5050 messages from the bundled schemas.

hypothesis-jsonschema does not run on the Hypothesis this project pins (it reaches into
Hypothesis internals that changed), so this is a small converter for the keywords the
VDA 5050 2.0/2.1 schemas use: ``type``, ``properties``/``required``, ``items``, ``enum``,
``minimum``/``maximum`` and ``$ref`` into ``definitions``; and for pydantic's schemas of
the hub's request bodies ``anyOf``, ``const``, ``pattern``, ``minLength``/``maxLength``,
``patternProperties`` and ``additionalProperties: true``. Anything else is ignored (the
VDA schemas carry only annotations besides: ``description``, ``unit``, ``examples``,
``format`` …). Strings are kept short so that messages stay within the codec's limits.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from topics import VDA_KINDS, VDA_SCHEMA_VERSIONS, VdaKind, vda_schema

__all__ = ["from_schema", "vda_message"]

_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
"""Short UTF-8 strings (no lone surrogates: they cannot be sent as UTF-8 JSON)."""


def _number(schema: dict[str, Any], integer: bool) -> st.SearchStrategy[Any]:
    low, high = schema.get("minimum"), schema.get("maximum")
    if integer:
        return st.integers(min_value=int(low) if low is not None else -(2**31),
                           max_value=int(high) if high is not None else 2**32)
    return st.floats(min_value=low if low is not None else -1e9,
                     max_value=high if high is not None else 1e9,
                     allow_nan=False, allow_infinity=False)


def _json_type(value: Any) -> str:
    """The JSON Schema type name of a JSON value."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number" if isinstance(value, float) else "integer"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), "null")


def _open_object(schema: dict[str, Any], root: dict[str, Any], depth: int
                 ) -> st.SearchStrategy[Any] | None:
    """A map with free keys (``patternProperties`` or ``additionalProperties: true``)."""
    if "patternProperties" in schema:
        [(pattern, values)] = schema["patternProperties"].items()
        return st.dictionaries(st.from_regex(pattern, fullmatch=True),
                               from_schema(values, root, depth + 1), max_size=3)
    if schema.get("additionalProperties") is True:
        return st.dictionaries(_TEXT, st.none() | st.booleans() | st.integers(-99, 99)
                               | _TEXT, max_size=3)
    return None


def from_schema(schema: dict[str, Any], root: dict[str, Any] | None = None,
                depth: int = 0) -> st.SearchStrategy[Any]:
    """Values valid against ``schema`` (a node of ``root``, whose ``definitions`` resolve
    ``$ref``); optional properties are drawn sometimes, arrays hold up to three items."""
    root = root if root is not None else schema
    if "$ref" in schema:
        where, _, name = schema["$ref"].removeprefix("#/").partition("/")
        return st.deferred(lambda: from_schema(root[where][name], root, depth + 1))
    if "anyOf" in schema:
        return st.one_of([from_schema(sub, root, depth) for sub in schema["anyOf"]])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if "enum" in schema:
        # 2.x factsheet.schema gives ``blockingTypes`` type array with a string enum: no
        # value fits both, so that property can never be sent (st.nothing(): left out).
        fits = [v for v in schema["enum"] if kind is None or _json_type(v) == kind
                or (kind, _json_type(v)) == ("number", "integer")]
        return st.sampled_from(fits) if fits else st.nothing()
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": k}, root, depth) for k in kind])
    if kind == "object" or "properties" in schema:
        if "properties" not in schema and (extra := _open_object(schema, root, depth)) is not None:
            return extra
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        inner = {k: from_schema(v, root, depth + 1) for k, v in props.items()}
        return st.fixed_dictionaries(
            {k: s for k, s in inner.items() if k in required},
            optional={k: s for k, s in inner.items() if k not in required and not s.is_empty})
    if kind == "array":
        items = from_schema(schema.get("items", {}), root, depth + 1)
        return st.lists(items, max_size=3 if depth < 6 and not items.is_empty else 0)
    if kind in ("number", "integer"):
        return _number(schema, kind == "integer")
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        return st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]),
                       min_size=schema.get("minLength", 0),
                       max_size=min(schema.get("maxLength", 12), 12))
    return st.none() | st.booleans() | _TEXT  # no type: anything JSON


def _version(version: tuple[int, int, int]) -> st.SearchStrategy[str]:
    """A ``version`` string the message's schema release accepts (any patch)."""
    major, minor, _ = version
    return st.integers(0, 9).map(lambda patch: f"{major}.{minor}.{patch}")


@st.composite
def vda_message(draw: st.DrawFn, kind: VdaKind | None = None) -> tuple[VdaKind, dict[str, Any]]:
    """``(kind, message)``: a message valid against the bundled schema of its version."""
    chosen: VdaKind = kind if kind is not None else draw(st.sampled_from(VDA_KINDS))
    version = draw(st.sampled_from(VDA_SCHEMA_VERSIONS))
    message: dict[str, Any] = draw(from_schema(vda_schema(chosen, version)))
    message["version"] = draw(_version(version))
    return chosen, message
