"""Safe expressions on workflow data: CEL (cel-python), compiled once, never ``eval``."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel

__all__ = ["ExpressionError", "compile_expression", "evaluate_condition"]

_ENV = celpy.Environment()


class ExpressionError(ValueError):
    """An expression that does not compile, or does not evaluate to a boolean."""


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> Any:
    """The runnable program for ``source``; cached so each expression compiles once."""
    try:
        return _ENV.program(_ENV.compile(source))
    except Exception as exc:  # celpy raises parser- and lark-specific types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ExpressionError(f"CEL expression {source!r} does not compile: {first}") from None


def evaluate_condition(source: str, context: dict[str, Any]) -> bool:
    """Evaluate ``source`` with ``context`` names (plain JSON-like values) bound; a bool.

    Evaluation errors (a missing field, a type mismatch) raise ``ExpressionError``; the core
    turns them into a non-retryable step failure rather than guessing a value.
    """
    program = compile_expression(source)
    activation = {name: json_to_cel(value) for name, value in context.items()}
    try:
        result = program.evaluate(activation)
    except Exception as exc:  # CELEvalError and friends
        raise ExpressionError(f"CEL expression {source!r} failed: {exc}") from None
    if isinstance(result, Exception):
        raise ExpressionError(f"CEL expression {source!r} failed: {result}")
    if not isinstance(result, celtypes.BoolType | bool):
        raise ExpressionError(f"CEL expression {source!r} gave {result!r}, not a boolean")
    return bool(result)
