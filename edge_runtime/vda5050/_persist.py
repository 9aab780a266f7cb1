"""The VDA 5050 master's durable records: dataclasses to JSON and back, by their type hints.

What the master and its bridge know (sessions, running orders, queued steps, header and
order counters, instant actions awaiting an answer) is kept in the edge's store as records
(docs/decisions.md, "The VDA 5050 master's state is a record"). The codec here is generic:
it walks ``dataclasses.fields`` and each field's type hint, so a field added to
``AgvSession``, ``RunningOrder`` or anything they hold is stored and read back without a
change here. It handles nested dataclasses, ``X | None`` and other unions, ``Literal``,
``tuple`` (fixed or ``...``), ``list``, ``deque``, ``set``, ``frozenset``, ``Sequence``,
``dict`` and ``Mapping`` (string keys as a JSON object, other keys as ``[key, value]``
pairs) and ``Any`` (stored as it is: plain JSON data).

Reading is lenient where a newer or older build may differ: a field missing from a record
takes its default (or default factory), a field the class no longer has is ignored. A record
that does not fit its type raises ``RecordError``; the caller skips it (the AGV is then
learnt afresh from its next messages, as before records existed).
"""

from __future__ import annotations

import dataclasses
import types
from collections import deque
from collections.abc import (
    Callable,
    Mapping,
    MutableMapping,
    MutableSequence,
    MutableSet,
    Sequence,
)
from collections.abc import Set as AbstractSet
from functools import cache
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import msgspec

__all__ = ["RecordError", "decode_record", "dump", "encode_record", "load"]

T = TypeVar("T")
_SCALARS: tuple[type, ...] = (str, int, float, bool)
_SEQUENCES: dict[Any, Any] = {
    list: list, MutableSequence: list, deque: deque, Sequence: tuple,
    set: set, MutableSet: set, frozenset: frozenset, AbstractSet: frozenset,
}
_MAPPINGS = (dict, Mapping, MutableMapping)


class RecordError(ValueError):
    """A value cannot be stored as its type says, or a record does not fit its type."""


@cache
def _hints(cls: Any) -> dict[str, Any]:
    return get_type_hints(cls)


def _is_dataclass_type(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _scalar(hint: Any) -> bool:
    return hint in _SCALARS or get_origin(hint) is Literal or hint is type(None)


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of type ``hint`` (shallowly: containers by their own type)."""
    if hint is Any:
        return True
    origin = get_origin(hint)
    if origin is Literal:
        return value in get_args(hint)
    if origin in (Union, types.UnionType):
        return any(_fits(value, a) for a in get_args(hint))
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, origin or hint)


def _union_args(hint: Any) -> list[Any]:
    return [a for a in get_args(hint) if a is not type(None)]


def dump(value: Any, hint: Any = Any) -> Any:
    """``value`` as plain JSON data, shaped by its type ``hint`` (``load`` reverses it)."""
    return _dumper(hint)(value)


def _same(value: Any) -> Any:
    return value


@cache
def _dumper(hint: Any) -> Callable[[Any], Any]:
    """The function that dumps values of type ``hint``, made once per type: the edge dumps
    the sessions its AGVs' states touched with every commit."""
    origin = get_origin(hint)
    if hint is Any or hint is object or origin is Literal or hint in _SCALARS:
        return _same
    if origin in (Union, types.UnionType):
        options = _union_args(hint)
        if len(options) == 1:
            return _optional(_dumper(options[0]))
        if all(_scalar(a) for a in options):
            return _same
        tagged = [(i, a, _dumper(a)) for i, a in enumerate(options)]

        def union(value: Any) -> Any:  # several kinds of value: tag it with its kind
            if value is None:
                return None
            for i, arg, inner in tagged:
                if _fits(value, arg):
                    return [i, inner(value)]
            raise RecordError(f"{type(value).__name__} is none of {hint}")
        return union
    if _is_dataclass_type(hint):
        hints = _hints(hint)
        fields = [(f.name, _dumper(hints[f.name])) for f in dataclasses.fields(hint)]
        return _optional(lambda v: {name: inner(getattr(v, name)) for name, inner in fields})
    args = get_args(hint)
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        each = [_dumper(a) for a in args]
        return _optional(lambda v: [inner(x) for inner, x in zip(each, v, strict=True)])
    if origin is tuple or origin in _SEQUENCES:
        inner = _dumper(args[0] if args else Any)
        if _SEQUENCES.get(origin) in (set, frozenset):  # in a stable order
            return _optional(lambda v: sorted((inner(x) for x in v), key=msgspec.json.encode))
        return _optional(lambda v: [inner(x) for x in v])
    if origin in _MAPPINGS:
        key_hint, value_hint = args or (Any, Any)
        key, val = _dumper(key_hint), _dumper(value_hint)
        if key_hint is str:
            return _optional(lambda v: {k: val(x) for k, x in v.items()})
        return _optional(lambda v: [[key(k), val(x)] for k, x in v.items()])
    if origin is None and isinstance(hint, type):
        return _same  # a bare dict, list …: plain data as it is
    raise RecordError(f"cannot store a value of type {hint}")


def _optional(inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else inner(value)


def load(raw: Any, hint: Any = Any) -> Any:
    """The value ``dump(value, hint)`` gave ``raw`` for; ``RecordError`` if it does not fit."""
    if raw is None or hint is Any or hint is object:
        return raw
    origin = get_origin(hint)
    if origin is Literal:
        if raw not in get_args(hint):
            raise RecordError(f"{raw!r} is not one of {get_args(hint)}")
        return raw
    if hint in _SCALARS:
        if not _fits(raw, hint) or (hint is int and isinstance(raw, bool)):
            raise RecordError(f"{raw!r} is not a {hint.__name__}")
        return float(raw) if hint is float else raw
    if origin in (Union, types.UnionType):
        options = _union_args(hint)
        if len(options) == 1:
            return load(raw, options[0])
        if all(_scalar(a) for a in options):
            return raw
        index, value = _expect(raw, list)
        return load(value, options[index])
    if _is_dataclass_type(hint):
        return _load_dataclass(_expect(raw, dict), hint)
    args = get_args(hint)
    if origin is tuple:
        items = _expect(raw, list)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(load(v, args[0]) for v in items)
        return tuple(load(v, a) for v, a in zip(items, args, strict=True))
    if origin in _SEQUENCES:
        return _SEQUENCES[origin](load(v, args[0] if args else Any)
                                  for v in _expect(raw, list))
    if origin in _MAPPINGS:
        key_hint, value_hint = args or (Any, Any)
        if key_hint is str:
            return {k: load(v, value_hint) for k, v in _expect(raw, dict).items()}
        return {load(k, key_hint): load(v, value_hint) for k, v in _expect(raw, list)}
    if origin is None and isinstance(hint, type):
        return _expect(raw, hint)
    raise RecordError(f"cannot read a value of type {hint}")


def _expect(raw: Any, kind: type[T]) -> T:
    if not isinstance(raw, kind):
        raise RecordError(f"expected a {kind.__name__}, found {type(raw).__name__}")
    return raw


def _load_dataclass(raw: dict[str, Any], cls: Any) -> Any:
    """An instance of ``cls`` with exactly the stored fields (no ``__init__`` runs: what was
    stored is what comes back); missing fields take their defaults."""
    hints = _hints(cls)
    obj = cls.__new__(cls)
    for f in dataclasses.fields(cls):
        if f.name in raw:
            try:
                value = load(raw[f.name], hints[f.name])
            except (RecordError, IndexError, TypeError, ValueError) as exc:
                raise RecordError(f"{cls.__name__}.{f.name}: {exc}") from None
        elif f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            raise RecordError(f"{cls.__name__}.{f.name} is missing from the record")
        object.__setattr__(obj, f.name, value)
    return obj


def encode_record(value: Any, cls: type) -> bytes:
    """The stored bytes of ``value`` (a ``cls``): JSON of ``dump(value, cls)``."""
    return msgspec.json.encode(dump(value, cls))


def decode_record(raw: bytes, cls: type[T]) -> T:
    """The ``cls`` that ``encode_record`` stored as ``raw``; ``RecordError`` if it does not fit."""
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise RecordError(f"not a JSON record: {exc}") from None
    try:
        value: T = load(data, cls)
    except (IndexError, TypeError, ValueError) as exc:  # RecordError is a ValueError
        raise RecordError(str(exc)) from None
    return value
