"""Runs a fuzz target under atheris (libFuzzer, coverage-guided) when it is installed, else
under a plain-Python fallback that mutates seeds and random bytes for the bounded time.

Both take libFuzzer's flags: ``-max_total_time=S``, ``-runs=N``, ``-seed=N`` and corpus
directories; the fallback reads those and ignores the rest. ``FLEETFLOW_FUZZ_FALLBACK=1``
forces the fallback. A target that raises anything is a crash: the input is printed (and,
under atheris, written to ``crash-…``) and the process exits non-zero.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["BytePicker", "instrumented", "run", "use_atheris"]

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # ``python fuzz/x.py`` puts fuzz/ first, not the repo root
    sys.path.insert(0, str(ROOT))


def use_atheris() -> bool:
    """Whether atheris is importable and the fallback is not forced."""
    if os.environ.get("FLEETFLOW_FUZZ_FALLBACK") == "1":
        return False
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def instrumented() -> Iterator[None]:
    """Imports inside this block get atheris' coverage instrumentation (if it runs)."""
    if use_atheris():
        import atheris

        with atheris.instrument_imports(include=["topics", "edge_runtime", "fuzz"]):
            yield
    else:
        yield


class BytePicker:
    """Turns fuzzer bytes into choices: each choice reads one or two bytes; once they run
    out every choice is the first option (so a short input is a short, tame script)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def __call__(self, options: Sequence[Any]) -> Any:
        """One of ``options`` (non-empty), chosen by the next bytes."""
        if self.at >= len(self.data):
            return options[0]
        width = 2 if len(options) > 256 else 1
        value = int.from_bytes(self.data[self.at:self.at + width], "little")
        self.at += width
        return options[value % len(options)]

    @property
    def exhausted(self) -> bool:
        """All bytes were used."""
        return self.at >= len(self.data)


def _flags(argv: Sequence[str]) -> tuple[dict[str, int], list[Path]]:
    flags: dict[str, int] = {}
    dirs: list[Path] = []
    for arg in argv[1:]:
        if arg.startswith("-") and "=" in arg:
            name, _, value = arg.lstrip("-").partition("=")
            with contextlib.suppress(ValueError):
                flags[name] = int(value)
        elif not arg.startswith("-") and Path(arg).is_dir():
            dirs.append(Path(arg))
    return flags, dirs


def _mutate(rng: random.Random, data: bytes, seeds: Sequence[bytes]) -> bytes:
    """One random edit: flip, insert, delete, splice with another seed, cut or extend."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        at = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(at, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 2 and buf:
            del buf[at:at + rng.randint(1, 16)]
        elif op == 3 and seeds:
            other = rng.choice(seeds)
            buf[at:] = other[rng.randrange(len(other) + 1):]
        elif op == 4:
            del buf[at:]
        else:
            buf[at:at] = bytes([rng.choice(b"\x00\xff[{\"9.e")]) * rng.randint(1, 64)
    return bytes(buf)


def _fallback(target: Callable[[bytes], None], argv: Sequence[str],
              seeds: Sequence[bytes]) -> int:
    flags, dirs = _flags(argv)
    corpus = list(seeds) + [p.read_bytes() for d in dirs for p in sorted(d.iterdir())
                            if p.is_file()]
    rng = random.Random(flags.get("seed", 0) or None)
    budget = flags.get("max_total_time", 10)
    runs = flags.get("runs", -1)
    start = time.monotonic()
    done = 0
    while (runs < 0 or done < runs) and time.monotonic() - start < budget:
        if corpus and rng.random() < 0.8:
            data = _mutate(rng, rng.choice(corpus), corpus)
        else:
            data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 512)))
        try:
            target(data)
        except Exception:
            traceback.print_exc()
            print(f"CRASH after {done} runs on input {data!r}", file=sys.stderr)
            return 1
        done += 1
    print(f"fallback driver (atheris not installed): {done} runs in "
          f"{time.monotonic() - start:.1f}s, no crash", file=sys.stderr)
    return 0


def run(target: Callable[[bytes], None], seeds: Sequence[bytes] = ()) -> None:
    """Fuzz ``target`` with ``sys.argv``'s flags; exits the process with its verdict."""
    if use_atheris():
        import atheris

        # Without a corpus directory (or crash file) given, libFuzzer starts from the seeds
        # (-seed_inputs) and keeps what it finds in memory. The seed files live in one fixed
        # place, rewritten each run: libFuzzer ends with a C exit(), so nothing of Python's
        # would clean a fresh temporary directory up.
        argv = list(sys.argv)
        if seeds and not any(not arg.startswith("-") for arg in argv[1:]):
            home = Path(tempfile.gettempdir()) / "fleetflow-fuzz-seeds" / Path(argv[0]).stem
            home.mkdir(parents=True, exist_ok=True)
            files = []
            for i, seed in enumerate(seeds):
                (file := home / f"seed-{i}").write_bytes(seed)
                files.append(str(file))
            argv.append("-seed_inputs=" + ",".join(files))
        atheris.Setup(argv, target)
        atheris.Fuzz()
        sys.exit(0)
    sys.exit(_fallback(target, sys.argv, seeds))
