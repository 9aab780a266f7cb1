"""The architecture holds: layers, a light core import, public names only, small modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("topics", "broker", "edge_runtime", "agents_sim", "bench", "fleetflow")
MAX_MODULE_LINES = 420


def _sources(*roots: str) -> list[Path]:
    return sorted(p for r in roots for p in (ROOT / r).rglob("*.py"))


def _package_of(path: Path) -> str:
    """Dotted package a file belongs to (``edge_runtime.core`` for ``edge_runtime/core/x.py``)."""
    return ".".join(path.relative_to(ROOT).parts[:-1])


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{a.name}") for a in node.names)
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names)
    return found


def test_import_contracts_hold() -> None:
    """`lint-imports` keeps every layer contract of pyproject.toml."""
    exe = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]


def test_core_import_is_light() -> None:
    """Importing the core loads no MQTT, RocksDB or metrics library."""
    code = (
        "import edge_runtime.core, sys; "
        "heavy = {'paho', 'rocksdict', 'prometheus_client', 'amqtt', 'socket', 'ssl'}; "
        "loaded = heavy & {m.split('.')[0] for m in sys.modules}; "
        "assert not loaded - {'socket', 'ssl'}, loaded"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_package_import_is_light() -> None:
    """``import edge_runtime`` imports none of its subpackages."""
    code = (
        "import edge_runtime, sys; "
        "sub = [m for m in sys.modules if m.startswith('edge_runtime.')]; "
        "assert not sub, sub"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_no_private_module_crosses_a_package() -> None:
    """Code imports another package's ``_private`` modules or names never: public names only."""
    offences: list[str] = []
    for path in _sources(*PACKAGES, "tests"):
        home = _package_of(path)
        for line, name in _imported(ast.parse(path.read_text(), str(path))):
            parts = name.split(".")
            if parts[0] not in PACKAGES:
                continue
            for i, part in enumerate(parts):
                if part.startswith("_") and not part.startswith("__"):
                    owner = ".".join(parts[:i])
                    if home != owner and not home.startswith(owner + "."):
                        offences.append(f"{path.relative_to(ROOT)}:{line}: {name}")
                    break
    assert not offences, "\n".join(offences)


def test_modules_stay_small() -> None:
    """No module of ours is over ~400 lines (one concept per module)."""
    big = [
        f"{p.relative_to(ROOT)}: {n} lines"
        for p in _sources(*PACKAGES, "dashboard", "cloud_hub")
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not big, "\n".join(big)
