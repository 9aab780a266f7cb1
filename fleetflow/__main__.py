"""``fleetflow``: one entry point, one module per subcommand (``fleetflow/_cmd_*.py``).

Each subcommand module defines ``register(subparsers)`` and imports its heavy
dependencies inside its handler, so that ``fleetflow --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from fleetflow._errors import CliError
from fleetflow._parser import CliParser

__all__ = ["CliError", "build_parser", "main"]

# Order is the order of `fleetflow --help`.
_COMMANDS = ("up", "broker", "edge", "hub", "wf", "templates", "sim", "dashboard", "bench")


def build_parser() -> argparse.ArgumentParser:
    """The whole argument parser, every subcommand registered."""
    # CliParser: one-line errors and unknown options named, for every subcommand too
    # (add_subparsers makes its parsers of the parser's own class).
    parser = CliParser(
        prog="fleetflow",
        description="Workflows carried out by robots, people and AI agents, over MQTT.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMANDS:
        importlib.import_module(f"fleetflow._cmd_{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int | None = args.handler(args)
    except CliError as exc:
        print(f"fleetflow {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result or 0


if __name__ == "__main__":
    sys.exit(main())
