"""The CLI's argument parser: every error one line on stderr, exit status 2.

``CliParser`` is the class of ``fleetflow``'s parser and, through ``add_subparsers``, of every
subcommand's. Before argparse sees the arguments it looks for options the parser does not
know: argparse would hand such an option's value to a sub-subcommand positional
(``fleetflow broker --prot 28884`` → "invalid choice: '28884'"), so an unknown option is
reported as itself, with the closest known spelling. Also here: the one log-level spelling
of every command (``--log-level debug|info|warning|error``, any case) and the logging set-up
that keeps the CEL library's parse trees out of DEBUG logs.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["LOG_LEVELS", "CliParser", "add_log_level", "log_level", "setup_logging"]

LOG_LEVELS = ("debug", "info", "warning", "error")
"""The spellings ``--log-level`` takes (case-insensitive)."""
DEBUG_CEL_ENV = "FLEETFLOW_DEBUG_CEL"
"""Set to 1 to let the CEL library (celpy) log at DEBUG too: it logs every parse tree."""

# A negative number is a value, never an option (as argparse decides for parsers without
# options that look like negative numbers, which is all of ours).
_NEGATIVE = re.compile(r"^-\d+$|^-\d*\.\d+$")


class CliParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line and which names unknown options."""

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: message`` as one line (no usage block) and exit with status 2."""
        self.exit(2, f"{self.prog}: {message.splitlines()[0] if message else 'bad usage'} "
                     f"(see {self.prog} --help)\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None,
    ) -> tuple[argparse.Namespace, list[str]]:
        """Refuse an unknown option first (with a suggestion), then parse as argparse does."""
        argv = list(sys.argv[1:] if args is None else args)
        unknown = self._unknown_option(argv)
        if unknown is not None:
            self.exit(2, f"{self.prog}: unknown option {unknown}{self._suggest(unknown)}\n")
        return super().parse_known_args(argv, namespace)

    # --- the scan ------------------------------------------------------------------------
    def _unknown_option(self, argv: list[str]) -> str | None:
        """The first option in ``argv`` this parser does not know, up to the sub-command
        (whose own parser checks the rest) or ``--``; ``None`` if there is none."""
        commands = self._command_names()
        i = 0
        while i < len(argv):
            token = argv[i]
            i += 1
            if token == "--":
                return None
            if not token.startswith("-") or token == "-" or _NEGATIVE.match(token):
                if token in commands:
                    return None  # the rest is the sub-command's
                continue
            name = token.split("=", 1)[0]
            action = self._action_for(name)
            if action is None:
                return name
            if action is _AMBIGUOUS:
                return None  # argparse says which options it could be
            if "=" not in token and not (len(name) == 2 and len(token) > 2):
                i = _skip_values(argv, i, action)
        return None

    def _command_names(self) -> set[str]:
        names: set[str] = set()
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                names.update(action.choices)
        return names

    def _action_for(self, name: str) -> argparse.Action | None:
        """The action of option ``name`` (exact, a unique prefix, or ``-x…`` joined)."""
        exact = self._option_string_actions.get(name)
        if exact is not None:
            return exact
        if not name.startswith("--"):
            return self._option_string_actions.get(name[:2])  # -qv, -p28884
        matches = {a for s, a in self._option_string_actions.items() if s.startswith(name)}
        if len(matches) == 1 and self.allow_abbrev:
            return matches.pop()
        return _AMBIGUOUS if matches else None

    def _suggest(self, name: str) -> str:
        options = [s for s in self._option_string_actions if s.startswith("--")]
        close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
        return f" (did you mean {close[0]}?)" if close else f" (see {self.prog} --help)"


_AMBIGUOUS: Any = argparse.Action(option_strings=[], dest="")


def _skip_values(argv: list[str], i: int, action: argparse.Action) -> int:
    """Index past the values that ``action`` takes from ``argv[i:]``."""
    nargs = action.nargs
    if nargs is None:
        return i + 1
    if isinstance(nargs, int):
        return i + nargs
    if nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE, argparse.ONE_OR_MORE):
        limit = 1 if nargs == argparse.OPTIONAL else len(argv)
        while limit and i < len(argv) and not argv[i].startswith("-"):
            i += 1
            limit -= 1
    return i


# --- log levels ---------------------------------------------------------------------------
def log_level(value: str) -> str:
    """``--log-level``'s type: any case of debug|info|warning|error → upper case."""
    if value.lower() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a log level (use {', '.join(LOG_LEVELS)})")
    return value.upper()


def add_log_level(p: argparse.ArgumentParser, default: str, what: str = "") -> None:
    """Add ``--log-level`` (env ``FLEETFLOW_LOG_LEVEL``, else ``default``), any case."""
    env = os.environ.get("FLEETFLOW_LOG_LEVEL") or default
    p.add_argument("--log-level", type=log_level, default=env, metavar="LEVEL",
                   help=f"{'|'.join(LOG_LEVELS)}, any case (env FLEETFLOW_LOG_LEVEL; "
                        f"default {default.lower()}){what}")


def setup_logging(level: str, fmt: str) -> None:
    """``logging.basicConfig`` at ``level``; the CEL library stays at WARNING (its DEBUG
    output is every parse tree) unless ``FLEETFLOW_DEBUG_CEL=1``."""
    level = log_level(level)  # an env value may be any case, or wrong: checked here too
    logging.basicConfig(level=level, format=fmt)
    if os.environ.get(DEBUG_CEL_ENV) != "1":
        for name in ("celpy", "lark"):
            logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
